/*
 * Raw BSON documents -> the Arrow columns of Hermes' Parquet writer, without a Python object per
 * value: the same column types and the same arrays that hermes/formats/parquet.py builds from
 * decoded documents (its docstring has the mapping).
 *
 * scan(raws) reads a chunk of documents once: one column per top-level key in first-seen order,
 * each a tree of nodes (struct fields, list elements) holding pointers to the values' bytes, and
 * infers each column's descriptor exactly as parquet.py's ``_infer`` does. The Python side then
 * widens the descriptors with the file's schema and calls build(descs) for the buffers of each
 * column in that (possibly wider) type; it makes the arrays with ``pa.Array.from_buffers``.
 * Extended JSON text columns (mixed values) are written by the JSON writer of _bsonjson.h.
 *
 * Like the JSON codecs it never guesses: a chunk with anything it does not reproduce exactly
 * (malformed BSON, keys starting with "$", repeated keys, invalid UTF-8, decimal128, symbol,
 * DBPointer, code with scope, undefined, old binary, nesting over MAX_DEPTH, data over Arrow's
 * 32-bit offsets) is declined, and the Python path converts that chunk.
 */

#include "_bsonjson.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#define HOST_IS_LITTLE_ENDIAN 0 /* Arrow buffers are native, BSON little-endian: decline all */
#else
#define HOST_IS_LITTLE_ENDIAN 1
#endif

/* Node kinds: what a column (or a struct field, or a list's elements) holds. */
enum {
    K_NULL,    /* nothing but nulls (or nothing) */
    K_STRING,
    K_INT32,
    K_INT64,
    K_DOUBLE,
    K_BOOL,
    K_DATE,
    K_OBJECT_ID,
    K_BINARY,  /* subtype 0, or another subtype (``subtype``) */
    K_UUID,    /* binary subtype 4, every value 16 bytes */
    K_STRUCT,
    K_LIST,
    K_TEXT,    /* Extended JSON text: mixed values, or a type with no Arrow counterpart */
};

/* One value: its BSON type and bytes. type 0 means the field is absent (read as null). */
typedef struct {
    const uint8_t *p;
    uint32_t size;
    uint8_t type;
} Elem;

typedef struct Node {
    int kind;
    int subtype;          /* K_BINARY */
    const char *text;     /* K_TEXT: the descriptor name ("mixed", "regex", ...) */
    size_t n;
    Elem *elems;
    size_t nfields;       /* K_STRUCT */
    struct Node *fields;
    Key *keys;            /* K_STRUCT: the field names, in the values' bytes */
    struct Node *element; /* K_LIST: every element of every list, in order */
    uint32_t *lengths;    /* K_LIST: each list's number of elements */
} Node;

#define DECLINE 1
#define OK 0
#define ERROR (-1)

static inline int is_null(const Elem *v) { return v->type == 0 || v->type == 0x0A; }

static void node_clear(Node *node) {
    for (size_t i = 0; i < node->nfields; i++) {
        node_clear(&node->fields[i]);
    }
    PyMem_Free(node->fields);
    PyMem_Free(node->keys);
    if (node->element) {
        node_clear(node->element);
        PyMem_Free(node->element);
    }
    PyMem_Free(node->lengths);
    PyMem_Free(node->elems);
    memset(node, 0, sizeof(*node));
}

/* Calls ``visit`` for each element of the document or array ``v``; DECLINE when malformed or
 * when a document key starts with "$" (DBRef and wrapper-shaped fields: Python decides). */
typedef int (*Visit)(void *state, const uint8_t *key, size_t key_len, Elem value);

static int each_element(const Elem *v, int is_array, Visit visit, void *state) {
    const uint8_t *pos = v->p + 4, *end = v->p + v->size - 1;
    while (pos < end) {
        uint8_t type = *pos++;
        const uint8_t *key = pos;
        const uint8_t *key_end = find_nul(key, end);
        if (!key_end) {
            return DECLINE;
        }
        size_t key_len = (size_t)(key_end - key);
        if (!is_array && key_len && key[0] == '$') {
            return DECLINE;
        }
        pos = key_end + 1;
        size_t size;
        if (bson_value_size(type, pos, (size_t)(end - pos), &size) != ENC_OK) {
            return DECLINE;
        }
        Elem value = {pos, (uint32_t)size, type}; /* the document's own size bounds it */
        pos += size;
        int rc = visit(state, key, key_len, value);
        if (rc != OK) {
            return rc;
        }
    }
    return OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Inference: parquet.py's _infer over the values' BSON types                                  */
/* ------------------------------------------------------------------------------------------ */

#define MIN_DATETIME_MS (-62135596800000LL) /* 0001-01-01, Python's datetime.min */

static int infer(Node *node, int depth);

static int count_visit(void *state, const uint8_t *key, size_t key_len, Elem value) {
    (void)key, (void)key_len, (void)value;
    (*(size_t *)state)++;
    return OK;
}

typedef struct {
    Node *node;  /* the struct node whose fields are filled */
    size_t row;
    size_t next; /* the field the next element must be */
} FieldFill;

static int field_visit(void *state, const uint8_t *key, size_t key_len, Elem value) {
    FieldFill *fill = state;
    Node *node = fill->node;
    if (fill->next >= node->nfields) {
        return DECLINE; /* more keys than the first document: mixed */
    }
    Key *expected = &node->keys[fill->next];
    if (expected->len != key_len || memcmp(expected->ptr, key, key_len) != 0) {
        return DECLINE;
    }
    node->fields[fill->next++].elems[fill->row] = value;
    return OK;
}

static int key_visit(void *state, const uint8_t *key, size_t key_len, Elem value) {
    (void)value;
    return push_key(state, key, key_len) < 0 ? ERROR : OK;
}

static void make_text(Node *node, const char *name) {
    for (size_t i = 0; i < node->nfields; i++) {
        node_clear(&node->fields[i]);
    }
    PyMem_Free(node->fields);
    PyMem_Free(node->keys);
    node->fields = NULL;
    node->keys = NULL;
    node->nfields = 0;
    if (node->element) {
        node_clear(node->element);
        PyMem_Free(node->element);
        node->element = NULL;
    }
    PyMem_Free(node->lengths);
    node->lengths = NULL;
    node->kind = K_TEXT;
    node->text = name;
}

/* Sub-documents with one key order (the first one's, non-empty, no repeats) become a struct;
 * any other set of sub-documents is mixed. */
static int infer_struct(Node *node, int depth) {
    size_t first = 0;
    while (is_null(&node->elems[first])) {
        first++;
    }
    Keys list = {0};
    int rc = each_element(&node->elems[first], 0, key_visit, &list);
    if (rc != OK) {
        PyMem_Free(list.items);
        return rc;
    }
    if (list.n == 0) {
        PyMem_Free(list.items);
        make_text(node, "mixed"); /* Parquet has no empty struct */
        return OK;
    }
    int duplicates;
    if (has_duplicate_keys(list.items, list.n, &duplicates) < 0) {
        PyMem_Free(list.items);
        return ERROR;
    }
    if (duplicates) {
        PyMem_Free(list.items);
        return DECLINE;
    }
    node->keys = list.items;
    node->nfields = list.n;
    node->fields = PyMem_Calloc(list.n, sizeof(Node));
    if (!node->fields) {
        PyErr_NoMemory();
        return ERROR;
    }
    for (size_t f = 0; f < list.n; f++) {
        node->fields[f].n = node->n;
        node->fields[f].elems = PyMem_Calloc(node->n ? node->n : 1, sizeof(Elem));
        if (!node->fields[f].elems) {
            PyErr_NoMemory();
            return ERROR;
        }
    }
    for (size_t row = 0; row < node->n; row++) {
        if (is_null(&node->elems[row])) {
            continue;
        }
        FieldFill fill = {node, row, 0};
        rc = each_element(&node->elems[row], 0, field_visit, &fill);
        if (rc == ERROR) {
            return rc;
        }
        if (rc == DECLINE || fill.next != node->nfields) {
            /* Another key order: mixed, unless the document is malformed (then Python says). */
            size_t count = 0;
            if (each_element(&node->elems[row], 0, count_visit, &count) != OK) {
                return DECLINE;
            }
            make_text(node, "mixed");
            return OK;
        }
    }
    for (size_t f = 0; f < node->nfields; f++) {
        if ((rc = infer(&node->fields[f], depth + 1)) != OK) {
            return rc;
        }
    }
    return OK;
}

typedef struct {
    Elem *out;
    size_t n;
} Flatten;

static int flatten_visit(void *state, const uint8_t *key, size_t key_len, Elem value) {
    (void)key, (void)key_len;
    Flatten *flat = state;
    flat->out[flat->n++] = value;
    return OK;
}

/* Arrays: every element of every array makes the list's element node; mixed elements make the
 * whole column mixed. */
static int infer_list(Node *node, int depth) {
    node->lengths = PyMem_Calloc(node->n ? node->n : 1, sizeof(uint32_t));
    if (!node->lengths) {
        PyErr_NoMemory();
        return ERROR;
    }
    size_t total = 0;
    for (size_t row = 0; row < node->n; row++) {
        size_t count = 0;
        if (!is_null(&node->elems[row]) &&
            each_element(&node->elems[row], 1, count_visit, &count) != OK) {
            return DECLINE;
        }
        node->lengths[row] = (uint32_t)count;
        total += count;
    }
    if (total > INT32_MAX) {
        return DECLINE; /* beyond a list's 32-bit offsets */
    }
    Node *element = PyMem_Calloc(1, sizeof(Node));
    if (!element) {
        PyErr_NoMemory();
        return ERROR;
    }
    node->element = element;
    element->n = total;
    element->elems = PyMem_Calloc(total ? total : 1, sizeof(Elem));
    if (!element->elems) {
        PyErr_NoMemory();
        return ERROR;
    }
    Flatten flat = {element->elems, 0};
    for (size_t row = 0; row < node->n; row++) {
        if (!is_null(&node->elems[row])) {
            each_element(&node->elems[row], 1, flatten_visit, &flat);
        }
    }
    int rc = infer(element, depth + 1);
    if (rc != OK) {
        return rc;
    }
    if (element->kind == K_TEXT && strcmp(element->text, "mixed") == 0) {
        make_text(node, "mixed");
    }
    return OK;
}

static int infer_binary(Node *node) {
    int subtype = -1, all16 = 1;
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (is_null(v)) {
            continue;
        }
        int this = v->p[4];
        if (this == 0x02) {
            return DECLINE; /* old binary: its inner length is Python's to check */
        }
        if (subtype >= 0 && this != subtype) {
            make_text(node, "mixed");
            return OK;
        }
        subtype = this;
        all16 &= v->size == 5 + 16;
    }
    node->kind = (subtype == 4 && all16) ? K_UUID : K_BINARY;
    node->subtype = subtype;
    return OK;
}

static int infer_dates(Node *node) {
    int inside = 0, outside = 0;
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (is_null(v)) {
            continue;
        }
        int64_t ms = (int64_t)read_u64(v->p);
        if (ms >= MIN_DATETIME_MS && ms <= MAX_DATETIME_MS) {
            inside = 1;
        } else {
            outside = 1;
        }
    }
    if (outside) {
        /* Beyond Python's datetime: DatetimeMS values, their own text type (or mixed). */
        make_text(node, inside ? "mixed" : "datetimeMS");
    } else {
        node->kind = K_DATE;
    }
    return OK;
}

static int infer(Node *node, int depth) {
    if (depth > MAX_DEPTH) {
        return DECLINE;
    }
    uint8_t type = 0;
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (is_null(v)) {
            continue;
        }
        if (type && v->type != type) {
            node->kind = K_TEXT;
            node->text = "mixed";
            return OK;
        }
        type = v->type;
    }
    switch (type) {
    case 0: node->kind = K_NULL; return OK;
    case 0x01: node->kind = K_DOUBLE; return OK;
    case 0x02: node->kind = K_STRING; return OK;
    case 0x03: node->kind = K_STRUCT; return infer_struct(node, depth);
    case 0x04: node->kind = K_LIST; return infer_list(node, depth);
    case 0x05: return infer_binary(node);
    case 0x07: node->kind = K_OBJECT_ID; return OK;
    case 0x08: node->kind = K_BOOL; return OK;
    case 0x09: return infer_dates(node);
    case 0x10: node->kind = K_INT32; return OK;
    case 0x12: node->kind = K_INT64; return OK;
    case 0x0B: make_text(node, "regex"); return OK;
    case 0x0D: make_text(node, "code"); return OK;
    case 0x11: make_text(node, "timestamp"); return OK;
    case 0x7F: make_text(node, "maxKey"); return OK;
    case 0xFF: make_text(node, "minKey"); return OK;
    default: return DECLINE;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Descriptors as parquet.py spells them                                                      */
/* ------------------------------------------------------------------------------------------ */

static const char *const SCALAR_NAMES[] = {
    [K_NULL] = "null",     [K_STRING] = "string",       [K_INT32] = "int32",
    [K_INT64] = "int64",   [K_DOUBLE] = "double",       [K_BOOL] = "bool",
    [K_DATE] = "date",     [K_OBJECT_ID] = "objectId",  [K_BINARY] = "binary",
    [K_UUID] = "uuid",
};

/* Descriptor names written as Extended JSON text (parquet.py's _is_text). */
static const char *const TEXT_NAMES[] = {
    "mixed", "regex", "timestamp", "code", "minKey", "maxKey", "dbref", "datetimeMS", NULL,
};

static PyObject *key_name(const Key *key) {
    return PyUnicode_DecodeUTF8((const char *)key->ptr, (Py_ssize_t)key->len, NULL);
}

static PyObject *node_desc(const Node *node) {
    switch (node->kind) {
    case K_TEXT: return PyUnicode_FromString(node->text);
    case K_BINARY:
        if (node->subtype != 0) {
            return Py_BuildValue("(si)", "binary", node->subtype);
        }
        return PyUnicode_FromString("binary");
    case K_LIST: {
        PyObject *element = node_desc(node->element);
        return element ? Py_BuildValue("(sN)", "array", element) : NULL;
    }
    case K_STRUCT: {
        PyObject *fields = PyTuple_New((Py_ssize_t)node->nfields);
        if (!fields) {
            return NULL;
        }
        for (size_t f = 0; f < node->nfields; f++) {
            PyObject *name = key_name(&node->keys[f]);
            PyObject *desc = name ? node_desc(&node->fields[f]) : NULL;
            PyObject *pair = desc ? PyTuple_Pack(2, name, desc) : NULL;
            Py_XDECREF(name);
            Py_XDECREF(desc);
            if (!pair) {
                Py_DECREF(fields);
                return NULL;
            }
            PyTuple_SET_ITEM(fields, (Py_ssize_t)f, pair);
        }
        return Py_BuildValue("(sN)", "object", fields);
    }
    default: return PyUnicode_FromString(SCALAR_NAMES[node->kind]);
    }
}

/* What a descriptor asks for: its kind (K_TEXT for any text type, -1 for one the scan never
 * infers, such as "decimal"), the binary subtype and the inner descriptor of a list or struct. */
typedef struct {
    int kind;
    int subtype;
    PyObject *inner; /* borrowed */
} Want;

static int parse_desc(PyObject *desc, Want *want) {
    want->subtype = 0;
    want->inner = NULL;
    if (PyUnicode_Check(desc)) {
        for (int kind = K_NULL; kind <= K_UUID; kind++) {
            if (PyUnicode_CompareWithASCIIString(desc, SCALAR_NAMES[kind]) == 0) {
                want->kind = kind;
                return OK;
            }
        }
        for (const char *const *name = TEXT_NAMES; *name; name++) {
            if (PyUnicode_CompareWithASCIIString(desc, *name) == 0) {
                want->kind = K_TEXT;
                return OK;
            }
        }
        want->kind = -1;
        return OK;
    }
    if (!PyTuple_Check(desc) || PyTuple_GET_SIZE(desc) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(desc, 0))) {
        PyErr_SetString(PyExc_TypeError, "not a Parquet column descriptor");
        return ERROR;
    }
    PyObject *tag = PyTuple_GET_ITEM(desc, 0);
    want->inner = PyTuple_GET_ITEM(desc, 1);
    if (PyUnicode_CompareWithASCIIString(tag, "array") == 0) {
        want->kind = K_LIST;
    } else if (PyUnicode_CompareWithASCIIString(tag, "object") == 0) {
        want->kind = K_STRUCT;
        if (!PyTuple_Check(want->inner)) {
            PyErr_SetString(PyExc_TypeError, "a struct descriptor needs a tuple of fields");
            return ERROR;
        }
    } else if (PyUnicode_CompareWithASCIIString(tag, "binary") == 0) {
        want->kind = K_BINARY;
        want->subtype = (int)PyLong_AsLong(want->inner);
        if (want->subtype == -1 && PyErr_Occurred()) {
            return ERROR;
        }
    } else {
        want->kind = -1;
    }
    return OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Building: the buffers of each node in the type the file's schema gives it                  */
/* ------------------------------------------------------------------------------------------ */

/* A column as Python receives it: (length, null count, buffers, children); buffers None means
 * every value is null. */
static PyObject *spec(size_t n, size_t nulls, PyObject *buffers, PyObject *children) {
    if (!buffers || !children) {
        Py_XDECREF(buffers);
        Py_XDECREF(children);
        return NULL;
    }
    return Py_BuildValue("(nnNN)", (Py_ssize_t)n, (Py_ssize_t)nulls, buffers, children);
}

static PyObject *all_null(size_t n) {
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    return spec(n, n, Py_None, Py_None);
}

static PyObject *new_bytes(size_t size, uint8_t **data) {
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (bytes) {
        *data = (uint8_t *)PyBytes_AS_STRING(bytes);
    }
    return bytes;
}

/* The validity bitmap (None when nothing is null) and the null count. */
static PyObject *validity(const Node *node, size_t *nulls) {
    size_t count = 0;
    for (size_t row = 0; row < node->n; row++) {
        count += is_null(&node->elems[row]);
    }
    *nulls = count;
    if (!count) {
        Py_RETURN_NONE;
    }
    uint8_t *bits;
    PyObject *bytes = new_bytes((node->n + 7) / 8, &bits);
    if (!bytes) {
        return NULL;
    }
    memset(bits, 0, (node->n + 7) / 8);
    for (size_t row = 0; row < node->n; row++) {
        if (!is_null(&node->elems[row])) {
            bits[row >> 3] |= (uint8_t)(1u << (row & 7));
        }
    }
    return bytes;
}

/* The ``width``-byte values of BSON type ``type`` copied as they are (little-endian both). */
static PyObject *build_fixed(const Node *node, size_t width, uint8_t type, int *rc) {
    size_t nulls;
    PyObject *valid = validity(node, &nulls);
    uint8_t *data;
    PyObject *values = valid ? new_bytes(node->n * width, &data) : NULL;
    if (!values) {
        Py_XDECREF(valid);
        return NULL;
    }
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (is_null(v)) {
            memset(data + row * width, 0, width);
        } else if (v->type != type) {
            *rc = DECLINE;
            Py_DECREF(valid);
            Py_DECREF(values);
            return NULL;
        } else {
            memcpy(data + row * width, v->p, width);
        }
    }
    return spec(node->n, nulls, Py_BuildValue("(NN)", valid, values), PyTuple_New(0));
}

static PyObject *build_bools(const Node *node, int *rc) {
    size_t nulls;
    PyObject *valid = validity(node, &nulls);
    uint8_t *bits;
    PyObject *values = valid ? new_bytes((node->n + 7) / 8, &bits) : NULL;
    if (!values) {
        Py_XDECREF(valid);
        return NULL;
    }
    memset(bits, 0, (node->n + 7) / 8);
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (is_null(v)) {
            continue;
        }
        if (v->type != 0x08 || v->p[0] > 1) {
            *rc = DECLINE;
            Py_DECREF(valid);
            Py_DECREF(values);
            return NULL;
        }
        bits[row >> 3] |= (uint8_t)(v->p[0] << (row & 7));
    }
    return spec(node->n, nulls, Py_BuildValue("(NN)", valid, values), PyTuple_New(0));
}

/* How a variable-width value is written: its length, and the writer of its bytes. */
typedef size_t (*Measure)(const Elem *v);
typedef void (*Write)(uint8_t *out, const Elem *v);

static size_t string_length(const Elem *v) { return v->size - 5; }
static void write_string(uint8_t *out, const Elem *v) { memcpy(out, v->p + 4, v->size - 5); }
static size_t binary_length(const Elem *v) { return v->size - 5; }
static void write_binary(uint8_t *out, const Elem *v) { memcpy(out, v->p + 5, v->size - 5); }
static size_t oid_length(const Elem *v) { (void)v; return 24; }
static void write_hex(uint8_t *out, const uint8_t *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)HEX[bytes[i] >> 4];
        out[2 * i + 1] = (uint8_t)HEX[bytes[i] & 15];
    }
}
static void write_oid(uint8_t *out, const Elem *v) { write_hex(out, v->p, 12); }
static size_t uuid_length(const Elem *v) { (void)v; return 36; }
static void write_uuid(uint8_t *out, const Elem *v) {
    /* str(uuid.UUID(bytes=...)): 8-4-4-4-12 lowercase hex digits */
    const uint8_t *b = v->p + 5;
    write_hex(out, b, 4);
    out[8] = '-';
    write_hex(out + 9, b + 4, 2);
    out[13] = '-';
    write_hex(out + 14, b + 6, 2);
    out[18] = '-';
    write_hex(out + 19, b + 8, 2);
    out[23] = '-';
    write_hex(out + 24, b + 10, 6);
}

/* Offsets and data of a string or binary column; ``type`` and ``subtype`` (-1: any) are what
 * each value must be, UTF-8 checked for strings. */
static PyObject *build_variable(const Node *node, uint8_t type, int subtype, Measure measure,
                                Write write, int check_utf8, int *rc) {
    size_t total = 0;
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (is_null(v)) {
            continue;
        }
        if (v->type != type || (subtype >= 0 && v->p[4] != subtype) ||
            (check_utf8 && !utf8_valid(v->p + 4, v->size - 5))) {
            *rc = DECLINE;
            return NULL;
        }
        total += measure(v);
    }
    if (total > INT32_MAX) {
        *rc = DECLINE; /* beyond 32-bit offsets */
        return NULL;
    }
    size_t nulls;
    PyObject *valid = validity(node, &nulls);
    uint8_t *offsets_data, *data;
    PyObject *offsets = valid ? new_bytes((node->n + 1) * 4, &offsets_data) : NULL;
    PyObject *values = offsets ? new_bytes(total, &data) : NULL;
    if (!values) {
        Py_XDECREF(valid);
        Py_XDECREF(offsets);
        return NULL;
    }
    int32_t *offset = (int32_t *)offsets_data;
    size_t position = 0;
    offset[0] = 0;
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (!is_null(v)) {
            write(data + position, v);
            position += measure(v);
        }
        offset[row + 1] = (int32_t)position;
    }
    return spec(node->n, nulls, Py_BuildValue("(NNN)", valid, offsets, values), PyTuple_New(0));
}

/* Each value as Extended JSON text (what parquet.py's _json_text writes: the value inside
 * {"": value}, so a sub-document is checked like any nested one). */
static PyObject *build_text(const Node *node, int canonical, int *rc) {
    Encoder e = {0};
    e.canonical = canonical;
    size_t nulls;
    PyObject *valid = validity(node, &nulls);
    uint8_t *offsets_data;
    PyObject *offsets = valid ? new_bytes((node->n + 1) * 4, &offsets_data) : NULL;
    if (!offsets) {
        Py_XDECREF(valid);
        return NULL;
    }
    int32_t *offset = (int32_t *)offsets_data;
    offset[0] = 0;
    for (size_t row = 0; row < node->n; row++) {
        const Elem *v = &node->elems[row];
        if (!is_null(v)) {
            const uint8_t *p = v->p;
            e.keys.n = 0;
            int status = put_value(&e, v->type, &p, v->p + v->size, 1);
            if (status == OK && e.len > INT32_MAX) {
                status = DECLINE;
            }
            if (status != OK) {
                encoder_free(&e);
                Py_DECREF(valid);
                Py_DECREF(offsets);
                if (status == DECLINE) {
                    *rc = DECLINE;
                }
                return NULL;
            }
        }
        offset[row + 1] = (int32_t)e.len;
    }
    PyObject *values = PyBytes_FromStringAndSize(e.buf ? e.buf : "", (Py_ssize_t)e.len);
    encoder_free(&e);
    if (!values) {
        Py_DECREF(valid);
        Py_DECREF(offsets);
        return NULL;
    }
    return spec(node->n, nulls, Py_BuildValue("(NNN)", valid, offsets, values), PyTuple_New(0));
}

static PyObject *build(const Node *node, PyObject *desc, int canonical, int *rc);

static int same_name(PyObject *name, const Key *key) {
    Py_ssize_t size;
    const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &size) : NULL;
    if (!text) {
        PyErr_Clear();
        return 0;
    }
    return (size_t)size == key->len && memcmp(text, key->ptr, key->len) == 0;
}

static PyObject *build_struct(const Node *node, PyObject *fields, int canonical, int *rc) {
    if ((size_t)PyTuple_GET_SIZE(fields) != node->nfields) {
        *rc = DECLINE;
        return NULL;
    }
    PyObject *children = PyTuple_New((Py_ssize_t)node->nfields);
    if (!children) {
        return NULL;
    }
    for (size_t f = 0; f < node->nfields; f++) {
        PyObject *field = PyTuple_GET_ITEM(fields, (Py_ssize_t)f);
        if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 2 ||
            !same_name(PyTuple_GET_ITEM(field, 0), &node->keys[f])) {
            *rc = DECLINE;
            Py_DECREF(children);
            return NULL;
        }
        PyObject *child = build(&node->fields[f], PyTuple_GET_ITEM(field, 1), canonical, rc);
        if (!child) {
            Py_DECREF(children);
            return NULL;
        }
        PyTuple_SET_ITEM(children, (Py_ssize_t)f, child);
    }
    size_t nulls;
    PyObject *valid = validity(node, &nulls);
    if (!valid) {
        Py_DECREF(children);
        return NULL;
    }
    PyObject *buffers = PyTuple_Pack(1, valid);
    Py_DECREF(valid);
    return spec(node->n, nulls, buffers, children);
}

static PyObject *build_list(const Node *node, PyObject *element, int canonical, int *rc) {
    PyObject *child = build(node->element, element, canonical, rc);
    if (!child) {
        return NULL;
    }
    size_t nulls;
    PyObject *valid = validity(node, &nulls);
    uint8_t *offsets_data;
    PyObject *offsets = valid ? new_bytes((node->n + 1) * 4, &offsets_data) : NULL;
    if (!offsets) {
        Py_XDECREF(valid);
        Py_DECREF(child);
        return NULL;
    }
    int32_t *offset = (int32_t *)offsets_data;
    offset[0] = 0;
    for (size_t row = 0; row < node->n; row++) {
        offset[row + 1] = offset[row] + (int32_t)node->lengths[row];
    }
    return spec(node->n, nulls, Py_BuildValue("(NN)", valid, offsets),
                Py_BuildValue("(N)", child));
}

/* The buffers of ``node`` as a column of type ``desc`` (the node's own type, or one the file's
 * schema widened it to). NULL with *rc == DECLINE when the values do not fit it. */
static PyObject *build(const Node *node, PyObject *desc, int canonical, int *rc) {
    Want want;
    if (parse_desc(desc, &want) != OK) {
        return NULL;
    }
    if (node->kind == K_NULL) {
        return all_null(node->n);
    }
    if (want.kind == K_TEXT) {
        return build_text(node, canonical, rc);
    }
    if (want.kind != node->kind || (want.kind == K_BINARY && want.subtype != node->subtype)) {
        *rc = DECLINE;
        return NULL;
    }
    switch (node->kind) {
    case K_STRING:
        return build_variable(node, 0x02, -1, string_length, write_string, 1, rc);
    case K_INT32: return build_fixed(node, 4, 0x10, rc);
    case K_INT64: return build_fixed(node, 8, 0x12, rc);
    case K_DOUBLE: return build_fixed(node, 8, 0x01, rc);
    case K_DATE: return build_fixed(node, 8, 0x09, rc);
    case K_BOOL: return build_bools(node, rc);
    case K_OBJECT_ID:
        return build_variable(node, 0x07, -1, oid_length, write_oid, 0, rc);
    case K_BINARY:
        return build_variable(node, 0x05, node->subtype, binary_length, write_binary, 0, rc);
    case K_UUID:
        return build_variable(node, 0x05, 4, uuid_length, write_uuid, 0, rc);
    case K_STRUCT: return build_struct(node, want.inner, canonical, rc);
    case K_LIST: return build_list(node, want.inner, canonical, rc);
    default:
        *rc = DECLINE;
        return NULL;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Scanning a chunk of documents into columns                                                 */
/* ------------------------------------------------------------------------------------------ */

/* A scanned chunk, kept in a capsule between scan() and build(): the documents' buffers stay
 * held while the columns point into them. */
typedef struct {
    Py_buffer *views;
    Py_ssize_t nviews;
    size_t nrows;
    Node *columns;
    Key *names;
    size_t ncolumns;
    size_t cap;
    uint32_t *order;  /* each document's columns in its key order, back to back */
    size_t *starts;   /* where each document's run starts in ``order`` (nrows + 1) */
    size_t order_cap;
} Scan;

#define CAPSULE_NAME "hermes.formats._bsonarrow.Scan"
#define MAX_COLUMNS 4096

static void scan_free(Scan *scan) {
    if (!scan) {
        return;
    }
    for (Py_ssize_t i = 0; i < scan->nviews; i++) {
        PyBuffer_Release(&scan->views[i]);
    }
    PyMem_Free(scan->views);
    for (size_t c = 0; c < scan->ncolumns; c++) {
        node_clear(&scan->columns[c]);
    }
    PyMem_Free(scan->columns);
    PyMem_Free(scan->names);
    PyMem_Free(scan->order);
    PyMem_Free(scan->starts);
    PyMem_Free(scan);
}

static void capsule_free(PyObject *capsule) {
    scan_free(PyCapsule_GetPointer(capsule, CAPSULE_NAME));
}

static int add_column(Scan *scan, const uint8_t *key, size_t key_len) {
    if (scan->ncolumns == MAX_COLUMNS) {
        return DECLINE;
    }
    if (scan->ncolumns == scan->cap) {
        size_t cap = scan->cap ? scan->cap * 2 : 32;
        Node *columns = PyMem_Realloc(scan->columns, cap * sizeof(Node));
        if (!columns) {
            PyErr_NoMemory();
            return ERROR;
        }
        scan->columns = columns;
        Key *names = PyMem_Realloc(scan->names, cap * sizeof(Key));
        if (!names) {
            PyErr_NoMemory();
            return ERROR;
        }
        scan->names = names;
        scan->cap = cap;
    }
    Node *column = &scan->columns[scan->ncolumns];
    memset(column, 0, sizeof(*column));
    column->n = scan->nrows;
    column->elems = PyMem_Calloc(scan->nrows ? scan->nrows : 1, sizeof(Elem));
    if (!column->elems) {
        PyErr_NoMemory();
        return ERROR;
    }
    scan->names[scan->ncolumns].ptr = key;
    scan->names[scan->ncolumns].len = key_len;
    scan->ncolumns++;
    return OK;
}

typedef struct {
    Scan *scan;
    size_t row;
    size_t index; /* the element's position in its document */
} RowFill;

static int row_visit(void *state, const uint8_t *key, size_t key_len, Elem value) {
    RowFill *fill = state;
    Scan *scan = fill->scan;
    size_t column = fill->index;
    /* Documents of a collection mostly share their key order: try the same position first. */
    if (column >= scan->ncolumns || scan->names[column].len != key_len ||
        memcmp(scan->names[column].ptr, key, key_len) != 0) {
        for (column = 0; column < scan->ncolumns; column++) {
            if (scan->names[column].len == key_len &&
                memcmp(scan->names[column].ptr, key, key_len) == 0) {
                break;
            }
        }
        if (column == scan->ncolumns) {
            int rc = add_column(scan, key, key_len);
            if (rc != OK) {
                return rc;
            }
        }
    }
    Elem *slot = &scan->columns[column].elems[fill->row];
    if (slot->type != 0) {
        return DECLINE; /* a repeated key: a dict keeps one value */
    }
    *slot = value;
    if (scan->starts[fill->row] + fill->index == scan->order_cap) {
        size_t cap = scan->order_cap * 2;
        uint32_t *order = PyMem_Realloc(scan->order, cap * sizeof(uint32_t));
        if (!order) {
            PyErr_NoMemory();
            return ERROR;
        }
        scan->order = order;
        scan->order_cap = cap;
    }
    scan->order[scan->starts[fill->row] + fill->index] = (uint32_t)column;
    fill->index++;
    return OK;
}

static int scan_documents(Scan *scan) {
    scan->starts = PyMem_Calloc(scan->nrows + 1, sizeof(size_t));
    scan->order_cap = 64 * (scan->nrows ? scan->nrows : 1);
    scan->order = PyMem_Malloc(scan->order_cap * sizeof(uint32_t));
    if (!scan->starts || !scan->order) {
        PyErr_NoMemory();
        return ERROR;
    }
    for (size_t row = 0; row < scan->nrows; row++) {
        const uint8_t *doc = scan->views[row].buf;
        size_t size = (size_t)scan->views[row].len;
        if (size < 5 || size > INT32_MAX || read_u32(doc) != size || doc[size - 1] != 0) {
            return DECLINE;
        }
        Elem whole = {doc, (uint32_t)size, 0x03};
        RowFill fill = {scan, row, 0};
        int rc = each_element(&whole, 0, row_visit, &fill);
        if (rc != OK) {
            return rc;
        }
        scan->starts[row + 1] = scan->starts[row] + fill.index;
    }
    for (size_t c = 0; c < scan->ncolumns; c++) {
        int rc = infer(&scan->columns[c], 2);
        if (rc != OK) {
            return rc;
        }
    }
    return OK;
}

/* Each document's keys (a tuple of names), or None when every document has exactly the
 * columns, in column order. */
static PyObject *document_keys(const Scan *scan, PyObject *names) {
    int uniform = 1;
    for (size_t row = 0; row < scan->nrows && uniform; row++) {
        size_t start = scan->starts[row], count = scan->starts[row + 1] - start;
        uniform = count == scan->ncolumns;
        for (size_t i = 0; i < count && uniform; i++) {
            uniform = scan->order[start + i] == i;
        }
    }
    if (uniform) {
        Py_RETURN_NONE;
    }
    PyObject *keys = PyList_New((Py_ssize_t)scan->nrows);
    if (!keys) {
        return NULL;
    }
    for (size_t row = 0; row < scan->nrows; row++) {
        size_t start = scan->starts[row], count = scan->starts[row + 1] - start;
        PyObject *own = PyTuple_New((Py_ssize_t)count);
        if (!own) {
            Py_DECREF(keys);
            return NULL;
        }
        for (size_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(names, scan->order[start + i]);
            Py_INCREF(name);
            PyTuple_SET_ITEM(own, (Py_ssize_t)i, name);
        }
        PyList_SET_ITEM(keys, (Py_ssize_t)row, own);
    }
    return keys;
}

static PyObject *scan_result(Scan *scan) {
    PyObject *names = PyTuple_New((Py_ssize_t)scan->ncolumns);
    PyObject *descs = PyTuple_New((Py_ssize_t)scan->ncolumns);
    if (!names || !descs) {
        goto fail;
    }
    for (size_t c = 0; c < scan->ncolumns; c++) {
        PyObject *name = key_name(&scan->names[c]);
        if (!name) {
            goto fail;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)c, name);
        PyObject *desc = node_desc(&scan->columns[c]);
        if (!desc) {
            goto fail;
        }
        PyTuple_SET_ITEM(descs, (Py_ssize_t)c, desc);
    }
    PyObject *keys = document_keys(scan, names);
    if (!keys) {
        goto fail;
    }
    PyObject *capsule = PyCapsule_New(scan, CAPSULE_NAME, capsule_free);
    if (!capsule) {
        Py_DECREF(keys);
        goto fail;
    }
    return Py_BuildValue("(NNNN)", names, descs, keys, capsule);
fail:
    Py_XDECREF(names);
    Py_XDECREF(descs);
    scan_free(scan);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Module functions                                                                           */
/* ------------------------------------------------------------------------------------------ */

PyDoc_STRVAR(scan_doc,
             "scan(raws) -> tuple[names, descs, keys, handle] | None\n\n"
             "Reads a list of BSON documents (bytes-like, each exactly one document) into\n"
             "columns: the top-level keys in first-seen order, each column's descriptor as\n"
             "parquet.py infers it, each document's keys (None when every document has exactly\n"
             "the columns in order) and a handle for build(). None when the chunk has anything\n"
             "the scanner does not reproduce exactly (the Python path converts it).");

static PyObject *bsonarrow_scan(PyObject *self, PyObject *raws) {
    (void)self;
    if (!HOST_IS_LITTLE_ENDIAN) {
        Py_RETURN_NONE;
    }
    PyObject *items = PySequence_Tuple(raws);
    if (!items) {
        return NULL;
    }
    Scan *scan = PyMem_Calloc(1, sizeof(Scan));
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    if (!scan || !(scan->views = PyMem_Calloc(count ? (size_t)count : 1, sizeof(Py_buffer)))) {
        PyMem_Free(scan);
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(items, i), &scan->views[i], PyBUF_SIMPLE) < 0) {
            Py_DECREF(items);
            scan_free(scan);
            return NULL;
        }
        scan->nviews++;
    }
    Py_DECREF(items);
    scan->nrows = (size_t)count;
    int rc = scan_documents(scan);
    if (rc != OK) {
        scan_free(scan);
        if (rc == ERROR) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *result = scan_result(scan);
    if (!result && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear(); /* a key that is not UTF-8: Python's decoder raises its own error */
        Py_RETURN_NONE;
    }
    return result;
}

PyDoc_STRVAR(build_doc,
             "build(handle, descs, canonical=False) -> list | None\n\n"
             "The buffers of each scanned column in the type its descriptor in descs gives it\n"
             "(its own or a wider one): for each, (length, null_count, buffers, children) with\n"
             "buffers as pa.Array.from_buffers takes them (bytes or None), buffers None when\n"
             "every value is null. None when a value does not fit (the Python path converts\n"
             "the chunk).");

static PyObject *bsonarrow_build(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"handle", "descs", "canonical", NULL};
    PyObject *capsule, *descs;
    int canonical = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|p:build", keywords, &capsule, &descs,
                                     &canonical)) {
        return NULL;
    }
    Scan *scan = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (!scan) {
        return NULL;
    }
    PyObject *items = PySequence_Tuple(descs);
    if (!items) {
        return NULL;
    }
    if ((size_t)PyTuple_GET_SIZE(items) != scan->ncolumns) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "one descriptor per scanned column is needed");
        return NULL;
    }
    PyObject *specs = PyList_New((Py_ssize_t)scan->ncolumns);
    if (!specs) {
        Py_DECREF(items);
        return NULL;
    }
    for (size_t c = 0; c < scan->ncolumns; c++) {
        int rc = OK;
        PyObject *column =
            build(&scan->columns[c], PyTuple_GET_ITEM(items, (Py_ssize_t)c), canonical, &rc);
        if (!column) {
            Py_DECREF(items);
            Py_DECREF(specs);
            if (rc == DECLINE && !PyErr_Occurred()) {
                Py_RETURN_NONE;
            }
            return NULL;
        }
        PyList_SET_ITEM(specs, (Py_ssize_t)c, column);
    }
    Py_DECREF(items);
    return specs;
}

static PyMethodDef bsonarrow_methods[] = {
    {"scan", bsonarrow_scan, METH_O, scan_doc},
    {"build", (PyCFunction)(void (*)(void))bsonarrow_build, METH_VARARGS | METH_KEYWORDS,
     build_doc},
    {NULL, NULL, 0, NULL},
};

static int bsonarrow_exec(PyObject *module) {
    (void)module;
    return build_pow10_table();
}

static PyModuleDef_Slot bsonarrow_slots[] = {
    {Py_mod_exec, bsonarrow_exec},
    {0, NULL},
};

static struct PyModuleDef bsonarrow_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hermes.formats._bsonarrow",
    .m_doc = "Raw BSON documents to the Arrow columns of Hermes' Parquet writer.",
    .m_size = 0,
    .m_methods = bsonarrow_methods,
    .m_slots = bsonarrow_slots,
};

PyMODINIT_FUNC PyInit__bsonarrow(void) { return PyModuleDef_Init(&bsonarrow_module); }
