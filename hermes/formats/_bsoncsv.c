/*
 * Raw BSON documents -> the natural cells of Hermes' CSV writer (hermes/formats/csv.py), without
 * a Python object per field.
 *
 * The CSV writer's first pass walks each document (decoded with naive UTC dates), flattening
 * sub-documents whose field name and keys are plain into dotted columns, and renders each leaf
 * as the text its natural type takes (a string's UTF-8, "%d" for integers, repr for doubles,
 * ISO dates with milliseconds, hex ObjectIds, base64 binary, Extended JSON for the rest). Here
 * the same walk runs on the BSON bytes: render() gives, per document, those cells and a
 * *signature*: the keys and value kinds of the walk, everything the writer's bookkeeping (which
 * columns, which key orders, which types) depends on. The writer learns a signature's leaf ids
 * from the first document that has it (through its Python walk) and takes the cells of the next
 * ones from here.
 *
 * join_rows() makes the second pass's lines from the spilled cells, for the row shapes the
 * writer has a plan for (columns placed as they are, some quoted).
 *
 * It never guesses: a document with anything it does not render exactly as Python would
 * (malformed BSON, a repeated key, a top-level key starting with "$", invalid UTF-8, a
 * Decimal128, or whatever the Extended JSON writer of _bsonjson.h declines) is declined (None)
 * and goes the Python way.
 */

#include "_bsonjson.h"

#define OK 0
#define DECLINE 1
#define ERROR (-1)

#define MIN_DATETIME_MS (-62135596800000LL) /* 0001-01-01, Python's datetime.min */

typedef struct {
    Encoder cells;     /* every cell's text, back to back */
    size_t *ends;      /* where each cell ends in ``cells`` */
    size_t ncells;
    size_t ends_cap;
    Encoder signature; /* the walk's keys and kinds */
    Keys keys;         /* keys of the levels being walked */
} Render;

static int end_cell(Render *r) {
    if (r->ncells == r->ends_cap) {
        size_t cap = r->ends_cap ? r->ends_cap * 2 : 64;
        size_t *ends = PyMem_Realloc(r->ends, cap * sizeof(size_t));
        if (!ends) {
            PyErr_NoMemory();
            return ERROR;
        }
        r->ends = ends;
        r->ends_cap = cap;
    }
    r->ends[r->ncells++] = r->cells.len;
    return OK;
}

/* One byte of kind (and its detail) after the key in the signature. */
static int sign(Render *r, const uint8_t *key, size_t key_len, uint8_t kind, uint8_t detail) {
    if (reserve(&r->signature, key_len + 3) < 0) {
        return ERROR;
    }
    memcpy(r->signature.buf + r->signature.len, key, key_len);
    r->signature.len += key_len;
    put_char(&r->signature, '\0');
    put_char(&r->signature, (char)kind);
    put_char(&r->signature, (char)detail);
    return OK;
}

/* csv.is_plain_name: non-empty, no ".", not starting with "$" or '"'. */
static int plain_name(const uint8_t *key, size_t len) {
    return len && key[0] != '$' && key[0] != '"' && !memchr(key, '.', len);
}

/* Whether the sub-document at doc flattens into dotted columns: non-empty, every key plain
 * (csv._flattens), whatever the values. Malformed bytes answer no: the JSON writer then
 * declines them. */
static int flattens(const uint8_t *doc, size_t size) {
    const uint8_t *pos = doc + 4, *end = doc + size - 1;
    if (pos >= end) {
        return 0;
    }
    while (pos < end) {
        uint8_t type = *pos++;
        const uint8_t *key = pos;
        const uint8_t *key_end = find_nul(key, end);
        if (!key_end || !plain_name(key, (size_t)(key_end - key))) {
            return 0;
        }
        pos = key_end + 1;
        size_t n;
        if (bson_value_size(type, pos, (size_t)(end - pos), &n) != ENC_OK) {
            return 0;
        }
        pos += n;
    }
    return 1;
}

/* The value's cell as Extended JSON (csv._json_bytes: the value inside {"": value}). */
static int json_cell(Render *r, uint8_t type, const uint8_t **pos, const uint8_t *end) {
    r->cells.keys.n = 0;
    int rc = put_value(&r->cells, type, pos, end, 1);
    return rc == ENC_OK ? end_cell(r) : rc;
}

static int walk(Render *r, const uint8_t *doc, size_t size, int top);

/* One element: its cell(s) and its signature entry. */
static int element(Render *r, uint8_t type, const uint8_t *key, size_t key_len,
                   const uint8_t **pos, const uint8_t *end) {
    const uint8_t *p = *pos;
    size_t avail = (size_t)(end - p);
    Encoder *c = &r->cells;
    switch (type) {
    case 0x02: { /* string: its UTF-8; the empty string is JSON ("" stands for missing) */
        if (avail < 5) {
            return DECLINE;
        }
        size_t n = read_u32(p);
        if (n < 1 || n > avail - 4 || p[4 + n - 1] != 0 || !utf8_valid(p + 4, n - 1)) {
            return DECLINE;
        }
        if (sign(r, key, key_len, 's', n > 1) < 0) {
            return ERROR;
        }
        *pos = p + 4 + n;
        if (reserve(c, n + 2) < 0) {
            return ERROR;
        }
        if (n == 1) {
            PUT_LITERAL(c, "\"\"");
        } else {
            put_bytes(c, (const char *)p + 4, n - 1);
        }
        return end_cell(r);
    }
    case 0x03: /* sub-document: dotted columns when it flattens, else JSON */
        if (avail >= 5 && plain_name(key, key_len)) {
            size_t n = read_u32(p);
            if (n >= 5 && n <= avail && p[n - 1] == 0 && flattens(p, n)) {
                if (sign(r, key, key_len, '{', 0) < 0) {
                    return ERROR;
                }
                int rc = walk(r, p, n, 0);
                if (rc != OK) {
                    return rc;
                }
                *pos = p + n;
                return sign(r, (const uint8_t *)"", 0, '}', 0);
            }
        }
        break;
    case 0x10: /* int32 */
        if (avail < 4) {
            return DECLINE;
        }
        if (sign(r, key, key_len, 'i', 0) < 0 || reserve(c, 24) < 0) {
            return ERROR;
        }
        put_int64(c, (int32_t)read_u32(p));
        *pos = p + 4;
        return end_cell(r);
    case 0x12: /* int64 */
        if (avail < 8) {
            return DECLINE;
        }
        if (sign(r, key, key_len, 'l', 0) < 0 || reserve(c, 24) < 0) {
            return ERROR;
        }
        put_int64(c, (int64_t)read_u64(p));
        *pos = p + 8;
        return end_cell(r);
    case 0x01: { /* double: repr, or NaN / Infinity / -Infinity */
        if (avail < 8) {
            return DECLINE;
        }
        uint64_t bits = read_u64(p);
        double v;
        memcpy(&v, &bits, 8);
        if (sign(r, key, key_len, 'd', 0) < 0 || reserve(c, 16) < 0) {
            return ERROR;
        }
        if (isnan(v)) {
            PUT_LITERAL(c, "NaN");
        } else if (isinf(v)) {
            if (v > 0) {
                PUT_LITERAL(c, "Infinity");
            } else {
                PUT_LITERAL(c, "-Infinity");
            }
        } else if (put_finite_double(c, v, 1) != ENC_OK) {
            return ERROR;
        }
        *pos = p + 8;
        return end_cell(r);
    }
    case 0x08: /* bool */
        if (avail < 1 || p[0] > 1) {
            return DECLINE;
        }
        if (sign(r, key, key_len, 'b', 0) < 0 || reserve(c, 5) < 0) {
            return ERROR;
        }
        if (p[0]) {
            PUT_LITERAL(c, "true");
        } else {
            PUT_LITERAL(c, "false");
        }
        *pos = p + 1;
        return end_cell(r);
    case 0x0A: /* null: JSON (an empty cell stands for a missing field) */
        if (sign(r, key, key_len, 'n', 0) < 0 || reserve(c, 4) < 0) {
            return ERROR;
        }
        PUT_LITERAL(c, "null");
        return end_cell(r);
    case 0x09: { /* date: ISO text within datetime's years, else JSON (DatetimeMS) */
        if (avail < 8) {
            return DECLINE;
        }
        int64_t ms = (int64_t)read_u64(p);
        if (ms < MIN_DATETIME_MS || ms > MAX_DATETIME_MS) {
            break;
        }
        if (sign(r, key, key_len, 't', 0) < 0 || reserve(c, 32) < 0) {
            return ERROR;
        }
        put_iso_datetime(c, ms);
        *pos = p + 8;
        return end_cell(r);
    }
    case 0x07: /* ObjectId: 24 hex digits */
        if (avail < 12) {
            return DECLINE;
        }
        if (sign(r, key, key_len, 'o', 0) < 0 || reserve(c, 24) < 0) {
            return ERROR;
        }
        for (int i = 0; i < 12; i++) {
            put_char(c, HEX[p[i] >> 4]);
            put_char(c, HEX[p[i] & 15]);
        }
        *pos = p + 12;
        return end_cell(r);
    case 0x05: { /* binary subtype 0, non-empty: base64; any other: JSON */
        if (avail < 5) {
            return DECLINE;
        }
        size_t n = read_u32(p);
        if (n > avail - 5) {
            return DECLINE;
        }
        if (p[4] != 0 || n == 0) {
            if (sign(r, key, key_len, 'x', p[4]) < 0) {
                return ERROR;
            }
            return json_cell(r, type, pos, end);
        }
        if (sign(r, key, key_len, 'B', 0) < 0 || reserve(c, (n + 2) / 3 * 4) < 0) {
            return ERROR;
        }
        put_base64(c, p + 5, n);
        *pos = p + 5 + n;
        return end_cell(r);
    }
    case 0x13: /* Decimal128: str() of it is Python's */
        return DECLINE;
    default:
        break;
    }
    /* Arrays, sub-documents that do not flatten, dates beyond datetime, the other types. */
    if (sign(r, key, key_len, 'j', type) < 0) {
        return ERROR;
    }
    return json_cell(r, type, pos, end);
}

/* The elements of a document (``top``) or of a sub-document that flattens. */
static int walk(Render *r, const uint8_t *doc, size_t size, int top) {
    const uint8_t *pos = doc + 4, *end = doc + size - 1;
    size_t first_key = r->keys.n;
    while (pos < end) {
        uint8_t type = *pos++;
        const uint8_t *key = pos;
        const uint8_t *key_end = find_nul(key, end);
        if (!key_end) {
            return DECLINE;
        }
        size_t key_len = (size_t)(key_end - key);
        if (top && key_len && key[0] == '$') {
            return DECLINE; /* pymongo's reading of such a document is Python's to tell */
        }
        pos = key_end + 1;
        if (pos > end) {
            return DECLINE;
        }
        int rc = push_key(&r->keys, key, key_len) < 0 ? ERROR : OK;
        if (rc == OK) {
            rc = element(r, type, key, key_len, &pos, end);
        }
        if (rc != OK) {
            return rc;
        }
    }
    if (pos != end) {
        return DECLINE;
    }
    int duplicates;
    if (has_duplicate_keys(r->keys.items + first_key, r->keys.n - first_key, &duplicates) < 0) {
        return ERROR;
    }
    r->keys.n = first_key;
    return duplicates ? DECLINE : OK;
}

/* (signature, (text, ends)) of one document, or None when declined: the cells' text back to
 * back and where each ends (uint32s, native order), two objects instead of one per cell, which
 * is what the spill file stores and join_rows reads. */
static PyObject *render_document(Render *r, const uint8_t *doc, size_t size) {
    r->cells.len = 0;
    r->signature.len = 0;
    r->ncells = 0;
    r->keys.n = 0;
    int rc = DECLINE;
    if (size >= 5 && size <= INT32_MAX && read_u32(doc) == size && doc[size - 1] == 0) {
        rc = walk(r, doc, size, 1);
    }
    if (rc == ERROR) {
        return NULL;
    }
    if (rc == DECLINE || r->cells.len > UINT32_MAX) {
        Py_RETURN_NONE;
    }
    uint8_t *ends_data;
    PyObject *ends = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(r->ncells * 4));
    if (!ends) {
        return NULL;
    }
    ends_data = (uint8_t *)PyBytes_AS_STRING(ends);
    for (size_t i = 0; i < r->ncells; i++) {
        uint32_t end = (uint32_t)r->ends[i];
        memcpy(ends_data + 4 * i, &end, 4);
    }
    PyObject *text = PyBytes_FromStringAndSize(r->cells.buf ? r->cells.buf : "",
                                               (Py_ssize_t)r->cells.len);
    PyObject *signature =
        text ? PyBytes_FromStringAndSize(r->signature.buf ? r->signature.buf : "",
                                         (Py_ssize_t)r->signature.len)
             : NULL;
    if (!signature) {
        Py_DECREF(ends);
        Py_XDECREF(text);
        return NULL;
    }
    return Py_BuildValue("(N(NN))", signature, text, ends);
}

PyDoc_STRVAR(render_doc,
             "render(raws, canonical=False) -> list[tuple[bytes, tuple[bytes, bytes]] | None]\n\n"
             "For each BSON document of raws (bytes-like, each exactly one document): its\n"
             "signature and its natural CSV cells as the CSV writer's walk renders them, packed:\n"
             "(text, ends), the cells back to back and where each ends (native uint32s);\n"
             "None for a document it declines.");

static PyObject *bsoncsv_render(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"raws", "canonical", NULL};
    PyObject *raws;
    int canonical = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:render", keywords, &raws, &canonical)) {
        return NULL;
    }
    PyObject *items = PySequence_Tuple(raws);
    if (!items) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    PyObject *out = PyList_New(count);
    Render r = {0};
    r.cells.canonical = canonical;
    if (!out) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(items, i), &view, PyBUF_SIMPLE) < 0) {
            goto fail;
        }
        PyObject *rendered = render_document(&r, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        if (!rendered) {
            goto fail;
        }
        PyList_SET_ITEM(out, i, rendered);
    }
    encoder_free(&r.cells);
    encoder_free(&r.signature);
    PyMem_Free(r.ends);
    PyMem_Free(r.keys.items);
    Py_DECREF(items);
    return out;
fail:
    encoder_free(&r.cells);
    encoder_free(&r.signature);
    PyMem_Free(r.ends);
    PyMem_Free(r.keys.items);
    Py_DECREF(items);
    Py_XDECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The second pass: rows from spilled cells                                                   */
/* ------------------------------------------------------------------------------------------ */

/* One row by its plan: the cells at ``positions`` joined by the delimiter, those flagged in
 * ``quote`` quoted (quotes doubled) when they hold a byte of ``special``, then CRLF. */
/* A row's cells: a list of bytes (ending with an empty cell), or packed as render() gives
 * them, (text, ends), where the index one past the last cell is the empty cell. */
typedef struct {
    PyObject *list;
    const char *text;
    const uint8_t *ends;
    Py_ssize_t count;
} Cells;

static int read_cells(PyObject *cells, Cells *c) {
    memset(c, 0, sizeof(*c));
    if (PyList_Check(cells)) {
        c->list = cells;
        c->count = PyList_GET_SIZE(cells);
        return OK;
    }
    if (PyTuple_Check(cells) && PyTuple_GET_SIZE(cells) == 2 &&
        PyBytes_Check(PyTuple_GET_ITEM(cells, 0)) && PyBytes_Check(PyTuple_GET_ITEM(cells, 1))) {
        PyObject *text = PyTuple_GET_ITEM(cells, 0), *ends = PyTuple_GET_ITEM(cells, 1);
        c->text = PyBytes_AS_STRING(text);
        c->ends = (const uint8_t *)PyBytes_AS_STRING(ends);
        c->count = PyBytes_GET_SIZE(ends) / 4 + 1;
        Py_ssize_t size = PyBytes_GET_SIZE(text);
        uint32_t previous = 0;
        for (Py_ssize_t i = 0; i + 1 < c->count; i++) { /* ends must rise within the text */
            uint32_t end;
            memcpy(&end, c->ends + 4 * i, 4);
            if (end < previous || end > (uint64_t)size) {
                PyErr_SetString(PyExc_ValueError, "packed cells with bad ends");
                return ERROR;
            }
            previous = end;
        }
        return OK;
    }
    PyErr_SetString(PyExc_TypeError, "cells are a list of bytes or packed (text, ends)");
    return ERROR;
}

static int cell_at(const Cells *c, Py_ssize_t index, const uint8_t **text, size_t *size) {
    if (c->list) {
        PyObject *cell = PyList_GET_ITEM(c->list, index);
        if (!PyBytes_Check(cell)) {
            PyErr_SetString(PyExc_TypeError, "cells are bytes");
            return ERROR;
        }
        *text = (const uint8_t *)PyBytes_AS_STRING(cell);
        *size = (size_t)PyBytes_GET_SIZE(cell);
        return OK;
    }
    if (index == c->count - 1) {
        *text = (const uint8_t *)"";
        *size = 0;
        return OK;
    }
    uint32_t start = 0, end;
    if (index > 0) {
        memcpy(&start, c->ends + 4 * (index - 1), 4);
    }
    memcpy(&end, c->ends + 4 * index, 4);
    *text = (const uint8_t *)c->text + start;
    *size = end - start;
    return OK;
}

/* One row by its plan: the cells at ``positions`` joined by the delimiter, those flagged in
 * ``quote`` quoted (quotes doubled) when they hold a byte of ``special``, then CRLF. */
static int join_row(Encoder *out, PyObject *cells, PyObject *plan, const uint8_t *special,
                    const char *delimiter, size_t delimiter_len) {
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 2) {
        PyErr_SetString(PyExc_TypeError, "a plan is (positions, quote flags)");
        return ERROR;
    }
    PyObject *positions = PyTuple_GET_ITEM(plan, 0), *flags = PyTuple_GET_ITEM(plan, 1);
    if (!PyTuple_Check(positions) || !PyBytes_Check(flags)) {
        PyErr_SetString(PyExc_TypeError, "a plan is (tuple of positions, bytes of flags)");
        return ERROR;
    }
    Cells c;
    if (read_cells(cells, &c) != OK) {
        return ERROR;
    }
    const char *quote = PyBytes_AS_STRING(flags);
    Py_ssize_t nflags = PyBytes_GET_SIZE(flags);
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(positions); j++) {
        Py_ssize_t index = PyLong_AsSsize_t(PyTuple_GET_ITEM(positions, j));
        if (index < 0 || index >= c.count) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_IndexError, "a plan's position is not a cell of the row");
            }
            return ERROR;
        }
        const uint8_t *text;
        size_t size;
        if (cell_at(&c, index, &text, &size) != OK) {
            return ERROR;
        }
        int quoted = 0, quotes = 0;
        if (index < nflags && quote[index]) {
            for (size_t k = 0; k < size; k++) {
                quoted |= special[text[k]];
                quotes += text[k] == '"';
            }
        }
        if (reserve(out, delimiter_len + size + (size_t)quotes + 4) < 0) {
            return ERROR;
        }
        if (j) {
            put_bytes(out, delimiter, delimiter_len);
        }
        if (!quoted) {
            put_bytes(out, (const char *)text, size);
            continue;
        }
        put_char(out, '"');
        for (size_t k = 0; k < size; k++) {
            if (text[k] == '"') {
                put_char(out, '"');
            }
            put_char(out, (char)text[k]);
        }
        put_char(out, '"');
    }
    if (reserve(out, 2) < 0) {
        return ERROR;
    }
    PUT_LITERAL(out, "\r\n");
    return OK;
}

PyDoc_STRVAR(join_rows_doc,
             "join_rows(batch, start, plans, special, delimiter) -> tuple[bytes, int]\n\n"
             "The CSV lines (each ending with CRLF) of the spilled (ids, cells) pairs of batch\n"
             "(cells a list of bytes ending with an empty one, or packed as render() gives them)\n"
             "from index start, as long as plans (a dict) holds a plan for their ids: a tuple\n"
             "(positions, quote flags) naming the cell of each column and the cells to quote\n"
             "when they hold a byte of special. Returns the lines and the index it stopped at\n"
             "(len(batch), or the first pair without a plan).");

static PyObject *bsoncsv_join_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *batch, *plans;
    Py_ssize_t start;
    Py_buffer special, delimiter;
    if (!PyArg_ParseTuple(args, "O!nO!y*y*:join_rows", &PyList_Type, &batch, &start,
                          &PyDict_Type, &plans, &special, &delimiter)) {
        return NULL;
    }
    uint8_t table[256] = {0};
    for (Py_ssize_t k = 0; k < special.len; k++) {
        table[((const uint8_t *)special.buf)[k]] = 1;
    }
    Encoder out = {0};
    Py_ssize_t index = start < 0 ? 0 : start;
    int rc = OK;
    for (; index < PyList_GET_SIZE(batch); index++) {
        PyObject *item = PyList_GET_ITEM(batch, index);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "a spilled row is an (ids, cells) tuple");
            rc = ERROR;
            break;
        }
        PyObject *plan = PyDict_GetItemWithError(plans, PyTuple_GET_ITEM(item, 0));
        if (!plan) {
            rc = PyErr_Occurred() ? ERROR : OK;
            break;
        }
        rc = join_row(&out, PyTuple_GET_ITEM(item, 1), plan, table, delimiter.buf,
                      (size_t)delimiter.len);
        if (rc != OK) {
            break;
        }
    }
    PyBuffer_Release(&special);
    PyBuffer_Release(&delimiter);
    if (rc != OK) {
        encoder_free(&out);
        return NULL;
    }
    PyObject *text = encoder_result(&out);
    return text ? Py_BuildValue("(Nn)", text, index) : NULL;
}

static PyMethodDef bsoncsv_methods[] = {
    {"render", (PyCFunction)(void (*)(void))bsoncsv_render, METH_VARARGS | METH_KEYWORDS,
     render_doc},
    {"join_rows", bsoncsv_join_rows, METH_VARARGS, join_rows_doc},
    {NULL, NULL, 0, NULL},
};

static int bsoncsv_exec(PyObject *module) {
    (void)module;
    return build_pow10_table();
}

static PyModuleDef_Slot bsoncsv_slots[] = {
    {Py_mod_exec, bsoncsv_exec},
    {0, NULL},
};

static struct PyModuleDef bsoncsv_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hermes.formats._bsoncsv",
    .m_doc = "Raw BSON documents to the natural cells of Hermes' CSV writer, and its rows.",
    .m_size = 0,
    .m_methods = bsoncsv_methods,
    .m_slots = bsoncsv_slots,
};

PyMODINIT_FUNC PyInit__bsoncsv(void) { return PyModuleDef_Init(&bsoncsv_module); }
