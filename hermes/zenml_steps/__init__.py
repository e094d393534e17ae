"""ZenML steps that export artifacts to files through Hermes' file layer.

Importing this package never imports ZenML; the step objects are built the first time they are
used (see :mod:`hermes.zenml_steps.export_steps`).
"""
