/*
 * Hermes' Extended JSON lines -> BSON, byte for byte what
 * ``bson.encode(extjson.loads_document(line), codec_options=<STANDARD uuids>)`` returns, without
 * building a Python object per field.
 *
 * The decoder never guesses. Whatever it does not reproduce exactly makes it *decline* the line
 * (the result is None) and the caller runs the Python path, which either builds the document or
 * raises the error (with line and column) the user would have met anyway. Declined: malformed
 * JSON, a line that is not an object, a top-level object without ``_id`` as its first key, keys
 * starting with "$" other than the type wrappers below, repeated keys, keys holding NUL, lone
 * surrogates, invalid UTF-8, integers outside int64, nesting deeper than MAX_DEPTH, and every
 * wrapper that is not exactly one of:
 *   {"$oid": "<24 hex>"}   {"$date": "YYYY-MM-DDTHH:MM:SS[.mmm]Z"}   {"$date": <int>}
 *   {"$date": {"$numberLong": "<int>"}}   {"$numberLong": "<int>"}   {"$numberInt": "<int>"}
 *   {"$numberDouble": "<decimal>|NaN|Infinity|-Infinity"}   {"$code": "..."}
 *   {"$binary": {"base64": "<canonical base64>", "subType": "<1-2 hex digits>"}}
 *   {"$timestamp": {"t": <uint32>, "i": <uint32>}}   {"$minKey": 1}   {"$maxKey": 1}
 *   {"$regularExpression": {"pattern": "<no NUL>", "options": "..."}}
 *
 * Every read is bounded by the end of the line; recursion is bounded by MAX_DEPTH; the output
 * grows in one heap buffer reused for every line and freed on every path.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_utf8.h"

/* Deeper documents are declined (the document itself is level 1). */
#define MAX_DEPTH 100
/* Objects with more keys are declined: the repeated-key check compares every pair. */
#define MAX_KEYS 1024

#define DEC_OK 0
#define DEC_DECLINE 1
#define DEC_ERROR (-1) /* a Python exception is set */

/* Propagate anything but DEC_OK. */
#define TRY(expr)                                                                              \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != DEC_OK) {                                                                   \
            return rc_;                                                                        \
        }                                                                                      \
    } while (0)

#define DECLINE_UNLESS(cond)                                                                   \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            return DEC_DECLINE;                                                                \
        }                                                                                      \
    } while (0)

/* BSON element types written here. */
enum {
    T_DOUBLE = 0x01,
    T_STRING = 0x02,
    T_DOCUMENT = 0x03,
    T_ARRAY = 0x04,
    T_BINARY = 0x05,
    T_OBJECTID = 0x07,
    T_BOOL = 0x08,
    T_DATE = 0x09,
    T_NULL = 0x0A,
    T_REGEX = 0x0B,
    T_CODE = 0x0D,
    T_INT32 = 0x10,
    T_TIMESTAMP = 0x11,
    T_INT64 = 0x12,
    T_MAXKEY = 0x7F,
    T_MINKEY = 0xFF,
};

/* A key of an object being decoded: where its bytes are in the output. */
typedef struct {
    size_t off;
    uint32_t len;
    uint32_t hash;
} KeyRef;

typedef struct {
    uint8_t *buf; /* output, grown by doubling, reused for every line */
    size_t len;
    size_t cap;
    KeyRef *keys; /* keys of the objects being decoded, innermost last */
    size_t nkeys;
    size_t keys_cap;
    const uint8_t *p; /* input cursor */
    const uint8_t *end;
} Decoder;

/* ------------------------------------------------------------------------------------------ */
/* Output buffer                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int grow(Decoder *d, size_t extra) {
    size_t need = d->len + extra;
    size_t cap = d->cap ? d->cap : 4096;
    if (need < d->len) {
        PyErr_NoMemory();
        return DEC_ERROR;
    }
    while (cap < need) {
        if (cap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            PyErr_NoMemory();
            return DEC_ERROR;
        }
        cap *= 2;
    }
    uint8_t *buf = PyMem_Realloc(d->buf, cap);
    if (!buf) {
        PyErr_NoMemory();
        return DEC_ERROR;
    }
    d->buf = buf;
    d->cap = cap;
    return DEC_OK;
}

/* Make room for ``extra`` more bytes; the unchecked writers below rely on it. */
static inline int reserve(Decoder *d, size_t extra) {
    return d->cap - d->len >= extra ? DEC_OK : grow(d, extra);
}

static inline void put_byte(Decoder *d, uint8_t c) { d->buf[d->len++] = c; }

static inline void put_bytes(Decoder *d, const void *s, size_t n) {
    memcpy(d->buf + d->len, s, n);
    d->len += n;
}

static inline void put_u32(Decoder *d, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put_bytes(d, b, 4);
}

static inline void put_u64(Decoder *d, uint64_t v) {
    put_u32(d, (uint32_t)v);
    put_u32(d, (uint32_t)(v >> 32));
}

static inline void patch_u32(Decoder *d, size_t off, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    memcpy(d->buf + off, b, 4);
}

static inline void put_double(Decoder *d, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_u64(d, bits);
}

/* Close the length-prefixed block (document, array, string) that starts at ``off``: BSON sizes
 * are int32, a larger one is declined. */
static inline int close_block(Decoder *d, size_t off) {
    size_t size = d->len - off;
    DECLINE_UNLESS(size <= INT32_MAX);
    patch_u32(d, off, (uint32_t)size);
    return DEC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Input                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static inline void skip_ws(Decoder *d) {
    const uint8_t *p = d->p, *end = d->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    d->p = p;
}

/* Skip whitespace, then consume ``c`` or decline. */
static inline int expect(Decoder *d, uint8_t c) {
    skip_ws(d);
    DECLINE_UNLESS(d->p < d->end && *d->p == c);
    d->p++;
    return DEC_OK;
}

/* Whether the input continues with the literal ``s`` (consumed if so). */
static inline int take_literal(Decoder *d, const char *s, size_t n) {
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, s, n) != 0) {
        return 0;
    }
    d->p += n;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Strings: JSON escapes to UTF-8, strict UTF-8 as Python decodes it                          */
/* ------------------------------------------------------------------------------------------ */


static inline int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* The four hex digits of a \uXXXX escape at p (p[-2..-1] is "\u"), or -1. */
static inline long hex4(const uint8_t *p, const uint8_t *end) {
    if (end - p < 4) {
        return -1;
    }
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

/* The escape after a backslash (d->p just past it), written as UTF-8; declines bad escapes and
 * lone surrogates (orjson refuses them, Python's fallback keeps them and bson then refuses). */
static int put_escape(Decoder *d) {
    DECLINE_UNLESS(d->p < d->end);
    uint8_t c = *d->p++;
    switch (c) {
    case '"': case '\\': case '/': put_byte(d, c); return DEC_OK;
    case 'b': put_byte(d, '\b'); return DEC_OK;
    case 'f': put_byte(d, '\f'); return DEC_OK;
    case 'n': put_byte(d, '\n'); return DEC_OK;
    case 'r': put_byte(d, '\r'); return DEC_OK;
    case 't': put_byte(d, '\t'); return DEC_OK;
    case 'u': break;
    default: return DEC_DECLINE;
    }
    long cp = hex4(d->p, d->end);
    DECLINE_UNLESS(cp >= 0 && (cp < 0xDC00 || cp > 0xDFFF));
    d->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        DECLINE_UNLESS(d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u');
        long low = hex4(d->p + 2, d->end);
        DECLINE_UNLESS(low >= 0xDC00 && low <= 0xDFFF);
        d->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    /* The escape took 6 or 12 input bytes and writes at most 4: the reservation holds. */
    if (cp < 0x80) {
        put_byte(d, (uint8_t)cp);
    } else if (cp < 0x800) {
        put_byte(d, (uint8_t)(0xC0 | (cp >> 6)));
        put_byte(d, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        put_byte(d, (uint8_t)(0xE0 | (cp >> 12)));
        put_byte(d, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        put_byte(d, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        put_byte(d, (uint8_t)(0xF0 | (cp >> 18)));
        put_byte(d, (uint8_t)(0x80 | ((cp >> 12) & 0x3F)));
        put_byte(d, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        put_byte(d, (uint8_t)(0x80 | (cp & 0x3F)));
    }
    return DEC_OK;
}

/* The JSON string at d->p (its opening quote) appended to the output, decoded; *length is its
 * byte count. The decoded text is never longer than the rest of the line, so one reservation
 * covers every unchecked write. */
static int put_string_text(Decoder *d, size_t *length) {
    DECLINE_UNLESS(d->p < d->end && *d->p == '"');
    d->p++;
    TRY(reserve(d, (size_t)(d->end - d->p) + 8));
    size_t start = d->len;
    const uint8_t *end = d->end;
    for (;;) {
        const uint8_t *p = d->p;
        while (end - p >= 8) {
            uint64_t block;
            memcpy(&block, p, 8);
            uint64_t special = special_bytes(block);
            memcpy(d->buf + d->len, p, 8); /* room: the reservation has 8 spare bytes */
            if (special) {
                size_t plain = plain_prefix(special);
                d->len += plain;
                p += plain;
                break;
            }
            d->len += 8;
            p += 8;
        }
        d->p = p;
        DECLINE_UNLESS(p < end);
        uint8_t c = *p;
        if (c == '"') {
            d->p = p + 1;
            *length = d->len - start;
            return DEC_OK;
        }
        if (c == '\\') {
            d->p = p + 1;
            TRY(put_escape(d));
        } else if (c >= 0x80) {
            size_t k = utf8_sequence(p, (size_t)(end - p));
            DECLINE_UNLESS(k);
            put_bytes(d, p, k);
            d->p = p + k;
        } else if (c < 0x20) {
            return DEC_DECLINE; /* a raw control character: not JSON */
        } else {
            put_byte(d, c);
            d->p = p + 1;
        }
    }
}

/* A scratch copy of a JSON string at the end of the output, for the wrappers to inspect; the
 * caller drops it (d->len = *off) once done. */
static int scratch_string(Decoder *d, size_t *off, size_t *length) {
    *off = d->len;
    return put_string_text(d, length);
}

static inline int scratch_is(Decoder *d, size_t off, size_t length, const char *s) {
    return length == strlen(s) && memcmp(d->buf + off, s, length) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Numbers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* Digits [s, e) (at most 19, checked by the caller or here) as a magnitude with a sign, into
 * int64; declines what does not fit. */
static int digits_to_int64(const uint8_t *s, const uint8_t *e, int negative, int64_t *out) {
    while (e - s > 1 && *s == '0') {
        s++; /* leading zeros: Python's int() accepts them in a $numberLong */
    }
    DECLINE_UNLESS(e > s && e - s <= 19);
    uint64_t v = 0;
    for (; s < e; s++) {
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (negative) {
        DECLINE_UNLESS(v <= (uint64_t)INT64_MAX + 1);
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        DECLINE_UNLESS(v <= (uint64_t)INT64_MAX);
        *out = (int64_t)v;
    }
    return DEC_OK;
}

/* Decimal text [s, e) read as the nearest double, as Python's float() and orjson read it (glibc
 * strtod is correctly rounded; an overflow is an infinity, as Python's json fallback reads the
 * numbers orjson refuses). The grammar was checked by the caller; strtod must agree on where
 * the number ends (it would not under a locale with another decimal point). */
static int text_to_double(const uint8_t *s, const uint8_t *e, double *out) {
    char small[64];
    size_t n = (size_t)(e - s);
    char *text = small;
    if (n >= sizeof(small)) {
        text = PyMem_Malloc(n + 1);
        if (!text) {
            PyErr_NoMemory();
            return DEC_ERROR;
        }
    }
    memcpy(text, s, n);
    text[n] = '\0';
    char *stop;
    *out = strtod(text, &stop);
    int whole = stop == text + n;
    if (text != small) {
        PyMem_Free(text);
    }
    return whole ? DEC_OK : DEC_DECLINE;
}

/* A JSON number token at d->p: an integer (no fraction, no exponent) into *integer with
 * *is_float = 0, else a double into *real with *is_float = 1. */
static int read_number(Decoder *d, int *is_float, int64_t *integer, double *real) {
    const uint8_t *s = d->p, *p = d->p, *end = d->end;
    int negative = p < end && *p == '-';
    p += negative;
    DECLINE_UNLESS(p < end && is_digit(*p));
    const uint8_t *digits = p;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    const uint8_t *digits_end = p;
    int fractional = 0;
    if (p < end && *p == '.') {
        p++;
        DECLINE_UNLESS(p < end && is_digit(*p));
        while (p < end && is_digit(*p)) {
            p++;
        }
        fractional = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        DECLINE_UNLESS(p < end && is_digit(*p));
        while (p < end && is_digit(*p)) {
            p++;
        }
        fractional = 1;
    }
    d->p = p;
    *is_float = fractional;
    if (fractional) {
        return text_to_double(s, p, real);
    }
    return digits_to_int64(digits, digits_end, negative, integer);
}

/* A JSON integer token (no fraction or exponent), or decline. */
static int read_integer(Decoder *d, int64_t *out) {
    int is_float;
    double ignored;
    TRY(read_number(d, &is_float, out, &ignored));
    DECLINE_UNLESS(!is_float);
    return DEC_OK;
}

/* Text Python's int() reads the same way: [+-]?[0-9]+ (no spaces, underscores, other digits). */
static int text_to_int64(const uint8_t *s, size_t n, int64_t *out) {
    const uint8_t *e = s + n;
    int negative = 0;
    if (s < e && (*s == '+' || *s == '-')) {
        negative = *s == '-';
        s++;
    }
    DECLINE_UNLESS(s < e);
    for (const uint8_t *q = s; q < e; q++) {
        DECLINE_UNLESS(is_digit(*q));
    }
    return digits_to_int64(s, e, negative, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Type wrappers                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* Each writer reads the wrapper's value at d->p, appends the BSON value and returns its type in
 * *type. The wrapper's closing brace is checked by the caller. */
typedef int (*WrapperReader)(Decoder *d, uint8_t *type);

/* A string value that must be a whole integer (Python's int()): $numberLong, $numberInt. */
static int read_int_string(Decoder *d, int64_t *out) {
    size_t off, n;
    TRY(scratch_string(d, &off, &n));
    int rc = text_to_int64(d->buf + off, n, out);
    d->len = off;
    return rc;
}

static int read_oid(Decoder *d, uint8_t *type) {
    size_t off, n;
    TRY(scratch_string(d, &off, &n));
    DECLINE_UNLESS(n == 24);
    uint8_t oid[12];
    for (int i = 0; i < 12; i++) {
        int hi = hex_value(d->buf[off + 2 * i]), lo = hex_value(d->buf[off + 2 * i + 1]);
        DECLINE_UNLESS(hi >= 0 && lo >= 0);
        oid[i] = (uint8_t)(hi * 16 + lo);
    }
    d->len = off;
    put_bytes(d, oid, 12); /* the 24-byte scratch held room for these */
    *type = T_OBJECTID;
    return DEC_OK;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t day) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Digits s[0..n) as a number, or -1 when one is not a digit. */
static int fixed_digits(const uint8_t *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DDTHH:MM:SS[.mmm]Z", as Hermes writes dates: the one shape of datetime.fromisoformat
 * reproduced here (every other shape is declined). */
static int iso_to_millis(const uint8_t *s, size_t n, int64_t *out) {
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    DECLINE_UNLESS(n == 20 || (n == 24 && s[19] == '.'));
    DECLINE_UNLESS(s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
                   s[n - 1] == 'Z');
    int year = fixed_digits(s, 4), month = fixed_digits(s + 5, 2), day = fixed_digits(s + 8, 2);
    int hour = fixed_digits(s + 11, 2), minute = fixed_digits(s + 14, 2);
    int second = fixed_digits(s + 17, 2), millis = n == 24 ? fixed_digits(s + 20, 3) : 0;
    DECLINE_UNLESS(year >= 1 && month >= 1 && month <= 12 && day >= 1 && hour >= 0 &&
                   hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 && second <= 59 &&
                   millis >= 0);
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    DECLINE_UNLESS(day <= month_days[month - 1] + (month == 2 && leap));
    int64_t days = days_from_civil(year, month, day);
    *out = ((days * 24 + hour) * 60 + minute) * 60000 + second * 1000 + millis;
    return DEC_OK;
}

/* {"$numberLong": "<int>"} at d->p (its opening brace), as the value of a $date. */
static int read_number_long_object(Decoder *d, int64_t *out) {
    TRY(expect(d, '{'));
    skip_ws(d);
    size_t off, n;
    TRY(scratch_string(d, &off, &n));
    int is_key = scratch_is(d, off, n, "$numberLong");
    d->len = off;
    DECLINE_UNLESS(is_key);
    TRY(expect(d, ':'));
    skip_ws(d);
    TRY(read_int_string(d, out));
    return expect(d, '}');
}

static int read_date(Decoder *d, uint8_t *type) {
    int64_t millis;
    DECLINE_UNLESS(d->p < d->end);
    if (*d->p == '"') {
        size_t off, n;
        TRY(scratch_string(d, &off, &n));
        int rc = iso_to_millis(d->buf + off, n, &millis);
        d->len = off;
        TRY(rc);
    } else if (*d->p == '{') {
        TRY(read_number_long_object(d, &millis));
    } else {
        TRY(read_integer(d, &millis)); /* the legacy {"$date": <millis>} */
    }
    TRY(reserve(d, 8));
    put_u64(d, (uint64_t)millis);
    *type = T_DATE;
    return DEC_OK;
}

static int read_number_long(Decoder *d, uint8_t *type) {
    int64_t v;
    TRY(read_int_string(d, &v));
    TRY(reserve(d, 8));
    put_u64(d, (uint64_t)v);
    *type = T_INT64;
    return DEC_OK;
}

static int read_number_int(Decoder *d, uint8_t *type) {
    int64_t v;
    TRY(read_int_string(d, &v));
    DECLINE_UNLESS(v >= INT32_MIN && v <= INT32_MAX);
    TRY(reserve(d, 4));
    put_u32(d, (uint32_t)(int32_t)v);
    *type = T_INT32;
    return DEC_OK;
}

/* Decimal text Python's float() and strtod read alike: [+-]?digits[.digits][e[+-]digits], with
 * digits on at least one side of the point. */
static int decimal_grammar(const uint8_t *s, size_t n) {
    const uint8_t *p = s, *e = s + n;
    if (p < e && (*p == '+' || *p == '-')) {
        p++;
    }
    const uint8_t *mantissa = p;
    while (p < e && is_digit(*p)) {
        p++;
    }
    size_t whole = (size_t)(p - mantissa);
    size_t fraction = 0;
    if (p < e && *p == '.') {
        const uint8_t *f = ++p;
        while (p < e && is_digit(*p)) {
            p++;
        }
        fraction = (size_t)(p - f);
    }
    if (whole + fraction == 0) {
        return 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) {
            p++;
        }
        const uint8_t *x = p;
        while (p < e && is_digit(*p)) {
            p++;
        }
        if (p == x) {
            return 0;
        }
    }
    return p == e;
}

static int read_number_double(Decoder *d, uint8_t *type) {
    size_t off, n;
    TRY(scratch_string(d, &off, &n));
    const uint8_t *s = d->buf + off;
    double v;
    uint64_t bits;
    if (scratch_is(d, off, n, "NaN")) {
        bits = 0x7FF8000000000000ULL; /* math.nan */
        memcpy(&v, &bits, 8);
    } else if (scratch_is(d, off, n, "Infinity")) {
        v = HUGE_VAL;
    } else if (scratch_is(d, off, n, "-Infinity")) {
        v = -HUGE_VAL;
    } else {
        int rc = decimal_grammar(s, n) ? text_to_double(s, s + n, &v) : DEC_DECLINE;
        if (rc != DEC_OK) {
            d->len = off;
            return rc;
        }
    }
    d->len = off;
    TRY(reserve(d, 8));
    put_double(d, v);
    *type = T_DOUBLE;
    return DEC_OK;
}

/* A JSON string as a BSON string value: int32 length, UTF-8, NUL. */
static int read_string_value(Decoder *d) {
    size_t start = d->len, n;
    TRY(reserve(d, 4));
    d->len += 4;
    TRY(put_string_text(d, &n));
    TRY(reserve(d, 1));
    put_byte(d, 0);
    DECLINE_UNLESS(n + 1 <= INT32_MAX);
    patch_u32(d, start, (uint32_t)(n + 1));
    return DEC_OK;
}

static int read_code(Decoder *d, uint8_t *type) {
    TRY(read_string_value(d));
    *type = T_CODE;
    return DEC_OK;
}

static int read_min_max(Decoder *d, uint8_t type, uint8_t *out) {
    /* Python takes any value == 1 (1.0, true); the plain 1 Hermes writes is enough here. */
    DECLINE_UNLESS(take_literal(d, "1", 1));
    DECLINE_UNLESS(d->p == d->end || !is_digit(*d->p));
    *out = type;
    return DEC_OK;
}

static int read_min_key(Decoder *d, uint8_t *type) { return read_min_max(d, T_MINKEY, type); }
static int read_max_key(Decoder *d, uint8_t *type) { return read_min_max(d, T_MAXKEY, type); }

/* An object with exactly the two keys ``names`` in either order, as extjson's ``set(value) ==
 * {...}`` takes it; each value is read by ``read`` with its index (0 or 1). */
typedef int (*FieldReader)(Decoder *d, int index, void *ctx);

static int read_pair(Decoder *d, const char *const names[2], FieldReader read, void *ctx) {
    TRY(expect(d, '{'));
    int seen = 0;
    for (int field = 0; field < 2; field++) {
        if (field) {
            TRY(expect(d, ','));
        }
        skip_ws(d);
        size_t off, n;
        TRY(scratch_string(d, &off, &n));
        int index = scratch_is(d, off, n, names[0]) ? 0 : scratch_is(d, off, n, names[1]) ? 1 : -1;
        d->len = off;
        DECLINE_UNLESS(index >= 0 && !(seen & (1 << index)));
        seen |= 1 << index;
        TRY(expect(d, ':'));
        skip_ws(d);
        TRY(read(d, index, ctx));
    }
    return expect(d, '}');
}

/* Two strings kept in the scratch area (offsets and lengths by field index). */
typedef struct {
    size_t off[2];
    size_t len[2];
} StringPair;

static int read_pair_string(Decoder *d, int index, void *ctx) {
    StringPair *pair = ctx;
    return scratch_string(d, &pair->off[index], &pair->len[index]);
}

static const signed char B64[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,
    ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
    ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
    ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,
    ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35,
    ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
    ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63,
    ['/'] = 64,
}; /* value + 1; 0 for a byte outside the alphabet */

/* Canonical padded base64 (length a multiple of 4, "=" only to complete the last quantum), as
 * base64.b64decode(validate=True) reads it; written to out, *written bytes. Other shapes
 * declined. */
static int decode_base64(const uint8_t *s, size_t n, uint8_t *out, size_t *written) {
    DECLINE_UNLESS(n % 4 == 0);
    size_t pad = 0;
    if (n && s[n - 1] == '=') {
        pad = s[n - 2] == '=' ? 2 : 1;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t q = 0;
        size_t chars = i + 4 == n ? 4 - pad : 4;
        for (size_t j = 0; j < 4; j++) {
            int v = j < chars ? B64[s[i + j]] - 1 : 0;
            if (v < 0) {
                return DEC_DECLINE;
            }
            q = q << 6 | (uint32_t)v;
        }
        out[o++] = (uint8_t)(q >> 16);
        if (chars > 2) {
            out[o++] = (uint8_t)(q >> 8);
        }
        if (chars > 3) {
            out[o++] = (uint8_t)q;
        }
    }
    *written = o;
    return DEC_OK;
}

static int read_binary(Decoder *d, uint8_t *type) {
    static const char *const names[2] = {"base64", "subType"};
    size_t value_off = d->len;
    StringPair pair;
    TRY(read_pair(d, names, read_pair_string, &pair));
    const uint8_t *sub = d->buf + pair.off[1];
    size_t sub_len = pair.len[1];
    DECLINE_UNLESS(sub_len == 1 || sub_len == 2);
    int hi = sub_len == 2 ? hex_value(sub[0]) : 0, lo = hex_value(sub[sub_len - 1]);
    DECLINE_UNLESS(hi >= 0 && lo >= 0);
    uint8_t subtype = (uint8_t)(hi * 16 + lo);
    /* Decode after the scratch strings, then move the value to its place. */
    size_t b64_len = pair.len[0];
    TRY(reserve(d, 9 + b64_len));
    uint8_t *out = d->buf + d->len + 9;
    size_t n;
    TRY(decode_base64(d->buf + pair.off[0], b64_len, out, &n));
    DECLINE_UNLESS(n <= INT32_MAX - 4);
    d->len = value_off;
    if (subtype == 2) { /* the old binary subtype: bson.encode nests the length once more */
        put_u32(d, (uint32_t)(n + 4));
        put_byte(d, subtype);
        put_u32(d, (uint32_t)n);
    } else {
        put_u32(d, (uint32_t)n);
        put_byte(d, subtype);
    }
    memmove(d->buf + d->len, out, n);
    d->len += n;
    *type = T_BINARY;
    return DEC_OK;
}

static int read_pair_uint32(Decoder *d, int index, void *ctx) {
    int64_t v;
    TRY(read_integer(d, &v));
    DECLINE_UNLESS(v >= 0 && v <= UINT32_MAX);
    ((uint32_t *)ctx)[index] = (uint32_t)v;
    return DEC_OK;
}

static int read_timestamp(Decoder *d, uint8_t *type) {
    static const char *const names[2] = {"t", "i"};
    uint32_t ti[2];
    TRY(read_pair(d, names, read_pair_uint32, ti));
    TRY(reserve(d, 8));
    put_u32(d, ti[1]); /* increment first */
    put_u32(d, ti[0]);
    *type = T_TIMESTAMP;
    return DEC_OK;
}

static int read_regex(Decoder *d, uint8_t *type) {
    static const char *const names[2] = {"pattern", "options"};
    static const char letters[] = "ilmsux"; /* the flags bson writes, in its order */
    size_t value_off = d->len;
    StringPair pair;
    TRY(read_pair(d, names, read_pair_string, &pair));
    const uint8_t *pattern = d->buf + pair.off[0];
    DECLINE_UNLESS(!memchr(pattern, 0, pair.len[0])); /* bson refuses it */
    /* Regex(pattern, options) keeps the known letters only; bson writes them in its order. */
    char flags[sizeof(letters)];
    size_t nflags = 0;
    for (const char *l = letters; *l; l++) {
        if (memchr(d->buf + pair.off[1], *l, pair.len[1])) {
            flags[nflags++] = *l;
        }
    }
    size_t pattern_len = pair.len[0];
    /* The pattern is the first scratch string or the second; move it to the value's place. */
    memmove(d->buf + value_off, d->buf + pair.off[0], pattern_len);
    d->len = value_off + pattern_len;
    TRY(reserve(d, nflags + 2));
    put_byte(d, 0);
    put_bytes(d, flags, nflags);
    put_byte(d, 0);
    *type = T_REGEX;
    return DEC_OK;
}

typedef struct {
    const char *name;
    WrapperReader read;
} Wrapper;

static const Wrapper WRAPPERS[] = {
    {"$oid", read_oid},
    {"$date", read_date},
    {"$numberLong", read_number_long},
    {"$numberInt", read_number_int},
    {"$numberDouble", read_number_double},
    {"$binary", read_binary},
    {"$timestamp", read_timestamp},
    {"$regularExpression", read_regex},
    {"$code", read_code},
    {"$minKey", read_min_key},
    {"$maxKey", read_max_key},
};

/* The object at d->p (just past its brace, at a key written with a literal "$"): a wrapper
 * with exactly one key. Anything else with a "$" key is declined. */
static int read_wrapper(Decoder *d, uint8_t *type) {
    size_t off, n;
    TRY(scratch_string(d, &off, &n));
    const Wrapper *found = NULL;
    for (size_t i = 0; i < sizeof(WRAPPERS) / sizeof(WRAPPERS[0]); i++) {
        if (scratch_is(d, off, n, WRAPPERS[i].name)) {
            found = &WRAPPERS[i];
            break;
        }
    }
    d->len = off;
    DECLINE_UNLESS(found);
    TRY(expect(d, ':'));
    skip_ws(d);
    TRY(found->read(d, type));
    return expect(d, '}');
}

/* ------------------------------------------------------------------------------------------ */
/* Documents                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static int read_value(Decoder *d, size_t type_off, int depth);

static uint32_t key_hash(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 16777619u;
    }
    return h;
}

/* Record the key just written at off (n bytes) for the object whose keys start at ``first``;
 * declines a repeat (Python would keep the last value at the first key's place). */
static int add_key(Decoder *d, size_t first, size_t off, size_t n) {
    DECLINE_UNLESS(d->nkeys - first < MAX_KEYS);
    uint32_t hash = key_hash(d->buf + off, n);
    for (size_t i = first; i < d->nkeys; i++) {
        const KeyRef *k = &d->keys[i];
        DECLINE_UNLESS(k->hash != hash || k->len != n || memcmp(d->buf + k->off, d->buf + off, n));
    }
    if (d->nkeys == d->keys_cap) {
        size_t cap = d->keys_cap ? d->keys_cap * 2 : 64;
        KeyRef *keys = PyMem_Realloc(d->keys, cap * sizeof(KeyRef));
        if (!keys) {
            PyErr_NoMemory();
            return DEC_ERROR;
        }
        d->keys = keys;
        d->keys_cap = cap;
    }
    d->keys[d->nkeys++] = (KeyRef){off, (uint32_t)n, hash};
    return DEC_OK;
}

/* The members of an object (d->p just past its brace) as a BSON document. ``top``: the line's
 * document, whose first key must be "_id" (bson.encode would move it there otherwise). */
static int read_object(Decoder *d, int depth, int top) {
    DECLINE_UNLESS(depth <= MAX_DEPTH);
    size_t doc_off = d->len;
    TRY(reserve(d, 5));
    d->len += 4;
    size_t first_key = d->nkeys;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        DECLINE_UNLESS(!top);
        d->p++;
    } else {
        for (;;) {
            skip_ws(d);
            size_t type_off = d->len;
            TRY(reserve(d, 1));
            d->len++;
            size_t key_off = d->len, n;
            TRY(put_string_text(d, &n));
            const uint8_t *key = d->buf + key_off;
            /* "$" keys: the wrappers were taken before; a plain one is declined. */
            DECLINE_UNLESS(!(n && key[0] == '$') && !memchr(key, 0, n));
            if (top && d->nkeys == first_key) {
                DECLINE_UNLESS(n == 3 && memcmp(key, "_id", 3) == 0);
            }
            TRY(add_key(d, first_key, key_off, n));
            TRY(reserve(d, 1));
            put_byte(d, 0);
            TRY(expect(d, ':'));
            TRY(read_value(d, type_off, depth));
            skip_ws(d);
            DECLINE_UNLESS(d->p < d->end);
            uint8_t c = *d->p++;
            if (c == '}') {
                break;
            }
            DECLINE_UNLESS(c == ',');
        }
    }
    d->nkeys = first_key;
    TRY(reserve(d, 1));
    put_byte(d, 0);
    return close_block(d, doc_off);
}

/* An array index as a BSON key: its decimal digits and a NUL. */
static inline void put_index_key(Decoder *d, uint32_t index) {
    char tmp[10];
    int i = 10;
    do {
        tmp[--i] = (char)('0' + index % 10);
        index /= 10;
    } while (index);
    put_bytes(d, tmp + i, (size_t)(10 - i));
    put_byte(d, 0);
}

/* The elements of an array (d->p just past its bracket) as a BSON document keyed "0", "1"... */
static int read_array(Decoder *d, int depth) {
    DECLINE_UNLESS(depth <= MAX_DEPTH);
    size_t doc_off = d->len;
    TRY(reserve(d, 5));
    d->len += 4;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
    } else {
        for (uint32_t index = 0;; index++) {
            size_t type_off = d->len;
            TRY(reserve(d, 12));
            d->len++;
            put_index_key(d, index);
            TRY(read_value(d, type_off, depth));
            skip_ws(d);
            DECLINE_UNLESS(d->p < d->end);
            uint8_t c = *d->p++;
            if (c == ']') {
                break;
            }
            DECLINE_UNLESS(c == ',');
        }
    }
    TRY(reserve(d, 1));
    put_byte(d, 0);
    return close_block(d, doc_off);
}


static int read_number_value(Decoder *d, uint8_t *type) {
    int is_float;
    int64_t integer;
    double real;
    TRY(read_number(d, &is_float, &integer, &real));
    TRY(reserve(d, 8));
    if (is_float) {
        put_double(d, real);
        *type = T_DOUBLE;
    } else if (integer >= INT32_MIN && integer <= INT32_MAX) {
        put_u32(d, (uint32_t)(int32_t)integer);
        *type = T_INT32;
    } else {
        put_u64(d, (uint64_t)integer);
        *type = T_INT64;
    }
    return DEC_OK;
}

/* The JSON value after a key (at d->p, whitespace allowed): its BSON value appended and its
 * type stored at type_off. ``depth`` is the level of the enclosing document. */
static int read_value(Decoder *d, size_t type_off, int depth) {
    skip_ws(d);
    DECLINE_UNLESS(d->p < d->end);
    uint8_t type;
    switch (*d->p) {
    case '"':
        TRY(read_string_value(d));
        type = T_STRING;
        break;
    case '{':
        d->p++;
        skip_ws(d);
        if (d->end - d->p >= 2 && d->p[0] == '"' && d->p[1] == '$') {
            TRY(read_wrapper(d, &type));
        } else {
            TRY(read_object(d, depth + 1, 0));
            type = T_DOCUMENT;
        }
        break;
    case '[':
        d->p++;
        TRY(read_array(d, depth + 1));
        type = T_ARRAY;
        break;
    case 't':
        DECLINE_UNLESS(take_literal(d, "true", 4));
        TRY(reserve(d, 1));
        put_byte(d, 1);
        type = T_BOOL;
        break;
    case 'f':
        DECLINE_UNLESS(take_literal(d, "false", 5));
        TRY(reserve(d, 1));
        put_byte(d, 0);
        type = T_BOOL;
        break;
    case 'n':
        DECLINE_UNLESS(take_literal(d, "null", 4));
        type = T_NULL;
        break;
    default:
        TRY(read_number_value(d, &type));
    }
    d->buf[type_off] = type;
    return DEC_OK;
}

/* One line: whitespace, an object, whitespace, nothing else. */
static int decode_line(Decoder *d, const uint8_t *line, size_t n) {
    d->p = line;
    d->end = line + n;
    d->len = 0;
    d->nkeys = 0;
    TRY(expect(d, '{'));
    TRY(read_object(d, 1, 1));
    skip_ws(d);
    DECLINE_UNLESS(d->p == d->end);
    return DEC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Module                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* The BSON of one item, or None when declined (or when the item is not bytes-like). */
static PyObject *decode_item(Decoder *d, PyObject *item) {
    Py_buffer view;
    if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear(); /* a str, say: the Python path reads it */
        Py_RETURN_NONE;
    }
    int rc = decode_line(d, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc == DEC_ERROR) {
        return NULL;
    }
    if (rc == DEC_DECLINE) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)d->buf, (Py_ssize_t)d->len);
}

PyDoc_STRVAR(lines_to_bson_doc,
             "lines_to_bson(lines) -> list[bytes | None]\n\n"
             "Each Extended JSON line (bytes-like) as BSON, byte-identical to bson.encode of\n"
             "extjson.loads_document(line) with STANDARD uuids; None where the decoder declines\n"
             "the line and the Python path must decide.");

static PyObject *jsonbson_lines_to_bson(PyObject *self, PyObject *lines) {
    (void)self;
    /* A tuple copy: reading an item cannot change the sequence under us. */
    PyObject *items = PySequence_Tuple(lines);
    if (!items) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    PyObject *out = PyList_New(count);
    Decoder d = {0};
    for (Py_ssize_t i = 0; out && i < count; i++) {
        PyObject *bson = decode_item(&d, PyTuple_GET_ITEM(items, i));
        if (!bson) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, bson);
    }
    PyMem_Free(d.buf);
    PyMem_Free(d.keys);
    Py_DECREF(items);
    return out;
}

static PyMethodDef jsonbson_methods[] = {
    {"lines_to_bson", jsonbson_lines_to_bson, METH_O, lines_to_bson_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef jsonbson_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hermes.formats._jsonbson",
    .m_doc = "Hermes' Extended JSON lines to BSON, byte-identical to the Python codec.",
    .m_size = 0,
    .m_methods = jsonbson_methods,
};

PyMODINIT_FUNC PyInit__jsonbson(void) { return PyModuleDef_Init(&jsonbson_module); }
