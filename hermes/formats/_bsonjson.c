/*
 * Raw BSON -> Hermes' Extended JSON v2, byte for byte what
 * ``extjson.dumps(bson.decode(raw, CODEC_OPTIONS), canonical)`` writes (the writer itself is in
 * _bsonjson.h). A declined document is encoded by the Python wrapper
 * (hermes/formats/rawjson.py) with the Python codec, which either writes it or raises the error
 * the caller would have met anyway.
 */

#include "_bsonjson.h"

/* ------------------------------------------------------------------------------------------ */
/* Module functions                                                                           */
/* ------------------------------------------------------------------------------------------ */

PyDoc_STRVAR(encode_doc,
             "encode(raw, canonical=False) -> bytes | None\n\n"
             "One BSON document as Extended JSON (no newline), or None when the encoder\n"
             "declines it and the Python codec must decide.");

static PyObject *bsonjson_encode(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"raw", "canonical", NULL};
    Py_buffer raw;
    int canonical = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|p:encode", keywords, &raw, &canonical)) {
        return NULL;
    }
    Encoder e = {0};
    e.canonical = canonical;
    int rc = put_document(&e, raw.buf, (size_t)raw.len, 0);
    PyBuffer_Release(&raw);
    if (rc == ENC_ERROR) {
        encoder_free(&e);
        return NULL;
    }
    if (rc == ENC_DECLINE) {
        encoder_free(&e);
        Py_RETURN_NONE;
    }
    return encoder_result(&e);
}

/* Record a declined span: (output offset, start, end). */
static int add_declined(PyObject **declined, size_t offset, Py_ssize_t start, Py_ssize_t end) {
    if (!*declined && !(*declined = PyList_New(0))) {
        return ENC_ERROR;
    }
    PyObject *item = Py_BuildValue("(nnn)", (Py_ssize_t)offset, start, end);
    if (!item) {
        return ENC_ERROR;
    }
    int rc = PyList_Append(*declined, item);
    Py_DECREF(item);
    return rc < 0 ? ENC_ERROR : ENC_OK;
}

/* Concatenated documents (bson.decode_all's input): spans are byte offsets. */
static int encode_concatenated(Encoder *e, const uint8_t *data, size_t total,
                               PyObject **declined) {
    size_t offset = 0;
    while (offset < total) {
        size_t rest = total - offset;
        const uint8_t *doc = data + offset;
        int32_t size = rest >= 4 ? (int32_t)read_u32(doc) : 0;
        if (rest < 5 || size < 5 || (size_t)size > rest || doc[size - 1] != 0) {
            /* The framing is broken from here on: Python reads the rest and says why. */
            return add_declined(declined, e->len, (Py_ssize_t)offset, (Py_ssize_t)total);
        }
        int rc = put_document(e, doc, (size_t)size, 1);
        if (rc == ENC_ERROR) {
            return rc;
        }
        if (rc == ENC_DECLINE &&
            add_declined(declined, e->len, (Py_ssize_t)offset, (Py_ssize_t)(offset + size)) < 0) {
            return ENC_ERROR;
        }
        offset += (size_t)size;
    }
    return ENC_OK;
}

/* A tuple of documents: spans are item indexes. */
static int encode_sequence(Encoder *e, PyObject *items, PyObject **declined) {
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        Py_buffer view;
        if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) {
            return ENC_ERROR;
        }
        int rc = put_document(e, view.buf, (size_t)view.len, 1);
        PyBuffer_Release(&view);
        if (rc == ENC_ERROR) {
            return rc;
        }
        if (rc == ENC_DECLINE && add_declined(declined, e->len, i, i + 1) < 0) {
            return ENC_ERROR;
        }
    }
    return ENC_OK;
}

PyDoc_STRVAR(
    encode_lines_doc,
    "encode_lines(chunk, canonical=False) -> tuple[bytes, list[tuple[int, int, int]]]\n\n"
    "Documents as Extended JSON lines, each followed by a newline. ``chunk`` is either a\n"
    "list/tuple of BSON documents (bytes-like) or one bytes-like object holding documents\n"
    "back to back (bson.decode_all's input). Returns the lines of every document the encoder\n"
    "wrote and the spans it declined, in order, as (output offset, start, end): the lines of\n"
    "documents start..end belong at that offset of the output. Spans are item indexes for a\n"
    "list and byte offsets for concatenated documents; broken framing declines the rest.");

static PyObject *bsonjson_encode_lines(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"chunk", "canonical", NULL};
    PyObject *chunk;
    int canonical = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:encode_lines", keywords, &chunk,
                                     &canonical)) {
        return NULL;
    }
    Encoder e = {0};
    e.canonical = canonical;
    PyObject *declined = NULL;
    int rc;
    if (PyList_Check(chunk) || PyTuple_Check(chunk)) {
        /* A tuple copy: reading an item's buffer cannot change the sequence under us. */
        PyObject *items = PySequence_Tuple(chunk);
        if (!items) {
            return NULL;
        }
        rc = encode_sequence(&e, items, &declined);
        Py_DECREF(items);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        rc = encode_concatenated(&e, view.buf, (size_t)view.len, &declined);
        PyBuffer_Release(&view);
    }
    if (rc == ENC_ERROR || (!declined && !(declined = PyList_New(0)))) {
        encoder_free(&e);
        Py_XDECREF(declined);
        return NULL;
    }
    PyObject *out = encoder_result(&e);
    if (!out) {
        Py_DECREF(declined);
        return NULL;
    }
    return Py_BuildValue("(NN)", out, declined);
}

/* ---------------------------------------------------------------------------------------
 * Nesting depth: MongoDB refuses documents nested more than 100 levels, and an import checks
 * every document it sends. Walking the encoded BSON costs a fraction of walking the dicts.
 * ------------------------------------------------------------------------------------- */

/* 1 when the document at doc (its level is depth) nests below limit, 0 when not, -1 when the
 * bytes are not well-formed BSON. Recursion stops one level past the limit. */
static int nesting_exceeds(const uint8_t *doc, size_t size, int depth, int limit) {
    if (depth > limit) {
        return 1;
    }
    if (size < 5 || read_u32(doc) != size || doc[size - 1] != 0) {
        return -1;
    }
    const uint8_t *p = doc + 4, *end = doc + size - 1;
    while (p < end) {
        uint8_t type = *p++;
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        if (!nul) {
            return -1;
        }
        p = nul + 1;
        size_t avail = (size_t)(end - p);
        uint64_t n;
        switch (type) {
        case 0x03: /* document */
        case 0x04: /* array */
            if (avail < 4 || (n = read_u32(p)) > avail) {
                return -1;
            }
            {
                int rc = nesting_exceeds(p, (size_t)n, depth + 1, limit);
                if (rc) {
                    return rc;
                }
            }
            break;
        case 0x01: case 0x09: case 0x11: case 0x12: n = 8; break;
        case 0x02: case 0x0D: case 0x0E: /* string, code, symbol */
            if (avail < 4) {
                return -1;
            }
            n = 4 + (uint64_t)read_u32(p);
            break;
        case 0x05: /* binary */
            if (avail < 4) {
                return -1;
            }
            n = 5 + (uint64_t)read_u32(p);
            break;
        case 0x06: case 0x0A: case 0x7F: case 0xFF: n = 0; break;
        case 0x07: n = 12; break;
        case 0x08: n = 1; break;
        case 0x0B: { /* regex: two C strings */
            const uint8_t *first = memchr(p, 0, avail);
            const uint8_t *second = first ? memchr(first + 1, 0, (size_t)(end - first - 1)) : NULL;
            if (!second) {
                return -1;
            }
            n = (uint64_t)(second + 1 - p);
            break;
        }
        case 0x0C: /* DBPointer: string and ObjectId */
            if (avail < 4) {
                return -1;
            }
            n = 4 + (uint64_t)read_u32(p) + 12;
            break;
        case 0x0F: /* code with scope: its total length first */
            if (avail < 4) {
                return -1;
            }
            n = read_u32(p);
            break;
        case 0x10: n = 4; break;
        case 0x13: n = 16; break;
        default: return -1;
        }
        if (n > avail) {
            return -1;
        }
        p += n;
    }
    return 0;
}

PyDoc_STRVAR(nesting_exceeds_doc,
             "nesting_exceeds(raw, limit) -> bool | None\n\n"
             "Whether the BSON document nests more than limit levels (the document itself is "
             "level 1, each embedded document or array one more); None when raw is not "
             "well-formed BSON.");

static PyObject *bsonjson_nesting_exceeds(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer raw;
    int limit;
    if (!PyArg_ParseTuple(args, "y*i:nesting_exceeds", &raw, &limit)) {
        return NULL;
    }
    int rc = nesting_exceeds(raw.buf, (size_t)raw.len, 1, limit);
    PyBuffer_Release(&raw);
    if (rc < 0) {
        Py_RETURN_NONE;
    }
    return PyBool_FromLong(rc);
}

static PyMethodDef bsonjson_methods[] = {
    {"nesting_exceeds", bsonjson_nesting_exceeds, METH_VARARGS, nesting_exceeds_doc},
    {"encode", (PyCFunction)(void (*)(void))bsonjson_encode, METH_VARARGS | METH_KEYWORDS,
     encode_doc},
    {"encode_lines", (PyCFunction)(void (*)(void))bsonjson_encode_lines,
     METH_VARARGS | METH_KEYWORDS, encode_lines_doc},
    {NULL, NULL, 0, NULL},
};

static int bsonjson_exec(PyObject *module) {
    (void)module;
    return build_pow10_table();
}

static PyModuleDef_Slot bsonjson_slots[] = {
    {Py_mod_exec, bsonjson_exec},
    {0, NULL},
};

static struct PyModuleDef bsonjson_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hermes.formats._bsonjson",
    .m_doc = "Raw BSON to Hermes' Extended JSON, byte-identical to the Python codec.",
    .m_size = 0,
    .m_methods = bsonjson_methods,
    .m_slots = bsonjson_slots,
};

PyMODINIT_FUNC PyInit__bsonjson(void) { return PyModuleDef_Init(&bsonjson_module); }
