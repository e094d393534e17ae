/*
 * The Extended JSON writer of raw BSON, shared by the C codecs that write JSON text from BSON
 * bytes (_bsonjson.c: whole documents; _bsonarrow.c: the values of Parquet's text columns).
 * It writes byte for byte what ``extjson.dumps(bson.decode(raw, CODEC_OPTIONS), canonical)``
 * writes, without building a Python object per field.
 *
 * The writer never guesses. Whatever it does not reproduce exactly (decimal128, code with scope,
 * symbol, DBPointer, undefined, keys starting with "$", duplicate keys, invalid UTF-8, malformed
 * BSON, nesting deeper than MAX_DEPTH, an unknown type) makes it *decline*: the caller hands that
 * value to the Python codec, which either writes it or raises the error the caller would have
 * met anyway.
 *
 * Every length is checked against the bytes that are really there before it is used; recursion
 * is bounded by MAX_DEPTH; the output grows in one heap buffer that is freed on every path.
 */

#ifndef HERMES_BSONJSON_H
#define HERMES_BSONJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_utf8.h"

/* Deeper documents are declined (orjson itself stops at 255 levels). */
#define MAX_DEPTH 100

/* Status of every encoding step. */
#define ENC_OK 0
#define ENC_DECLINE 1
#define ENC_ERROR (-1) /* a Python exception is set */

typedef struct {
    const uint8_t *ptr;
    size_t len;
} Key;

/* Keys of the documents being walked, innermost last, for the repeat check. */
typedef struct {
    Key *items;
    size_t n;
    size_t cap;
} Keys;

typedef struct {
    char *buf; /* output, grown by doubling */
    size_t len;
    size_t cap;
    Keys keys;
    int canonical;
} Encoder;

/* ------------------------------------------------------------------------------------------ */
/* Output buffer                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int grow(Encoder *e, size_t extra) {
    size_t need = e->len + extra;
    size_t cap = e->cap ? e->cap : 4096;
    if (need < e->len) {
        PyErr_NoMemory();
        return ENC_ERROR;
    }
    while (cap < need) {
        if (cap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            PyErr_NoMemory();
            return ENC_ERROR;
        }
        cap *= 2;
    }
    char *buf = PyMem_Realloc(e->buf, cap);
    if (!buf) {
        PyErr_NoMemory();
        return ENC_ERROR;
    }
    e->buf = buf;
    e->cap = cap;
    return ENC_OK;
}

/* Make room for ``extra`` more bytes. */
static inline int reserve(Encoder *e, size_t extra) {
    if (e->cap - e->len >= extra) {
        return ENC_OK;
    }
    return grow(e, extra);
}

/* The unchecked writers below are only called after a reserve() that covers them. */
static inline void put_char(Encoder *e, char c) { e->buf[e->len++] = c; }

/* Copy n <= 24 bytes with fixed-size moves (a library call costs more than such a copy). */
static inline void copy_small(char *dst, const char *src, size_t n) {
    if (n >= 16) {
        memcpy(dst, src, 16);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[i];
        }
    }
}

static inline void put_small(Encoder *e, const char *s, size_t n) {
    copy_small(e->buf + e->len, s, n);
    e->len += n;
}

static inline void put_bytes(Encoder *e, const char *s, size_t n) {
    memcpy(e->buf + e->len, s, n);
    e->len += n;
}

#define PUT_LITERAL(e, s) put_bytes((e), (s), sizeof(s) - 1)

static void put_uint64(Encoder *e, uint64_t v) {
    char tmp[20];
    int i = 20;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_small(e, tmp + i, (size_t)(20 - i));
}

static void put_int64(Encoder *e, int64_t v) {
    if (v < 0) {
        put_char(e, '-');
        put_uint64(e, (uint64_t)0 - (uint64_t)v);
    } else {
        put_uint64(e, (uint64_t)v);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Strings: strict UTF-8 (as Python decodes it) and orjson's escaping                         */
/* ------------------------------------------------------------------------------------------ */

/* 0: copy; 1: escape with \uXXXX; other: the letter of a two-character escape. */
static const char ESCAPES[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 'b', 't', 'n', 1, 'f', 'r', 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

static const char HEX[] = "0123456789abcdef";


/* A JSON string, quotes included, escaped as orjson escapes; declines invalid UTF-8.
 * Invariant: the buffer has room for the rest of the text plus the closing quote, so plain
 * bytes are copied unchecked and only escapes (which grow the text) reserve more. */
static int put_string(Encoder *e, const uint8_t *s, size_t n) {
    if (reserve(e, n + 2) < 0) {
        return ENC_ERROR;
    }
    put_char(e, '"');
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t block;
            memcpy(&block, s + i, 8);
            uint64_t special = special_bytes(block);
            memcpy(e->buf + e->len, s + i, 8); /* room: n - i + 1 >= 9 bytes */
            if (!special) {
                e->len += 8;
                i += 8;
                continue;
            }
            size_t plain = plain_prefix(special);
            e->len += plain;
            i += plain;
        }
        uint8_t c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_sequence(s + i, n - i);
            if (!k) {
                return ENC_DECLINE;
            }
            put_small(e, (const char *)s + i, k);
            i += k;
            continue;
        }
        char esc = ESCAPES[c];
        if (esc) {
            if (reserve(e, 6 + (n - i - 1) + 1) < 0) {
                return ENC_ERROR;
            }
            put_char(e, '\\');
            if (esc == 1) {
                char u[5] = {'u', '0', '0', HEX[c >> 4], HEX[c & 15]};
                put_small(e, u, 5);
            } else {
                put_char(e, esc);
            }
        } else {
            put_char(e, (char)c);
        }
        i++;
    }
    put_char(e, '"');
    return ENC_OK;
}

/* The first NUL in [p, end), or NULL: keys are short, a loop beats a library call. */
static inline const uint8_t *find_nul(const uint8_t *p, const uint8_t *end) {
    for (; p < end; p++) {
        if (!*p) {
            return p;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Doubles                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* The shortest decimal that reads back as v: digits x 10^exponent10 (digits > 0). */
typedef struct {
    uint64_t digits;
    int exponent10;
} Shortest;

static const char DIGIT_PAIRS[] = "00010203040506070809101112131415161718192021222324252627282930"
                                  "31323334353637383940414243444546474849505152535455565758596061"
                                  "6263646566676869707172737475767778798081828384858687888990919293"
                                  "949596979899";

static const uint64_t POWERS_OF_TEN[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
    1000000000000000000ULL, 10000000000000000000ULL,
};

/* Number of decimal digits of v > 0. */
static inline int count_digits(uint64_t v) {
#if defined(__GNUC__)
    int guess = ((64 - __builtin_clzll(v)) * 1233) >> 12; /* floor(log10(2^bits)) */
    return guess + (v >= POWERS_OF_TEN[guess]);
#else
    int n = 1;
    while (n < 20 && v >= POWERS_OF_TEN[n]) {
        n++;
    }
    return n;
#endif
}

/* Exactly four digits of v < 10000 at out[0..4). */
static inline void four_digits(char *out, uint32_t v) {
    memcpy(out, DIGIT_PAIRS + 2 * (v / 100), 2);
    memcpy(out + 2, DIGIT_PAIRS + 2 * (v % 100), 2);
}

/* Write the decimal digits of v so that they end just before ``end``. */
static void digits_before(char *end, uint64_t v) {
    if (v >= 100000000) {
        uint32_t low = (uint32_t)(v % 100000000); /* exactly eight digits, leading zeros kept */
        v /= 100000000;
        four_digits(end - 8, low / 10000);
        four_digits(end - 4, low % 10000);
        end -= 8;
    }
    uint32_t high = (uint32_t)v; /* below 10^10: a double has at most 17 digits */
    while (high >= 10000) {
        four_digits(end - 4, high % 10000);
        high /= 10000;
        end -= 4;
    }
    if (high >= 100) {
        memcpy(end - 2, DIGIT_PAIRS + 2 * (high % 100), 2);
        high /= 100;
        end -= 2;
    }
    if (high >= 10) {
        memcpy(end - 2, DIGIT_PAIRS + 2 * high, 2);
    } else {
        end[-1] = (char)('0' + high);
    }
}

static void strip_zeros(Shortest *d) {
    while (d->digits % 100000000 == 0) {
        d->digits /= 100000000;
        d->exponent10 += 8;
    }
    if (d->digits % 10000 == 0) {
        d->digits /= 10000;
        d->exponent10 += 4;
    }
    if (d->digits % 100 == 0) {
        d->digits /= 100;
        d->exponent10 += 2;
    }
    if (d->digits % 10 == 0) {
        d->digits /= 10;
        d->exponent10 += 1;
    }
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

/* 10^j ~ F x 2^E with F in [2^127, 2^128) rounded down, for every j = -floor(q log10 2) a
 * double's binary exponent q can give. Computed once from Python's exact integers. */
#define POW10_JMIN (-292)
#define POW10_JMAX 324
typedef struct {
    uint64_t hi, lo;
    int exponent;
} Pow10;
static Pow10 pow10_table[POW10_JMAX - POW10_JMIN + 1];
static int pow10_ready = 0;

/* The top 128 bits of a positive int and the power of two they stand for. */
static int top128(PyObject *x, Pow10 *out) {
    PyObject *bits_obj = PyObject_CallMethod(x, "bit_length", NULL);
    if (!bits_obj) {
        return -1;
    }
    long bits = PyLong_AsLong(bits_obj);
    Py_DECREF(bits_obj);
    if (bits < 0) {
        return -1;
    }
    PyObject *shift = PyLong_FromLong(bits > 128 ? bits - 128 : 128 - bits);
    if (!shift) {
        return -1;
    }
    PyObject *top = bits > 128 ? PyNumber_Rshift(x, shift) : PyNumber_Lshift(x, shift);
    Py_DECREF(shift);
    if (!top) {
        return -1;
    }
    PyObject *sixty_four = PyLong_FromLong(64);
    PyObject *high = sixty_four ? PyNumber_Rshift(top, sixty_four) : NULL;
    Py_XDECREF(sixty_four);
    if (!high) {
        Py_DECREF(top);
        return -1;
    }
    out->lo = PyLong_AsUnsignedLongLongMask(top);
    out->hi = PyLong_AsUnsignedLongLongMask(high);
    out->exponent = (int)(bits - 128);
    Py_DECREF(top);
    Py_DECREF(high);
    return PyErr_Occurred() ? -1 : 0;
}

static int build_pow10_table(void) {
    if (pow10_ready) {
        return 0;
    }
    int rc = -1;
    PyObject *ten = PyLong_FromLong(10);
    PyObject *power = PyLong_FromLong(1); /* 10^|j| */
    PyObject *one = PyLong_FromLong(1);
    if (!ten || !power || !one) {
        goto done;
    }
    for (int j = 0; j <= POW10_JMAX || j <= -POW10_JMIN; j++) {
        if (j <= POW10_JMAX && top128(power, &pow10_table[j - POW10_JMIN]) < 0) {
            goto done;
        }
        if (j > 0 && -j >= POW10_JMIN) {
            /* 10^-j = (2^(127 + L) // 10^j) x 2^-(127 + L), L = bit length of 10^j. */
            PyObject *bits_obj = PyObject_CallMethod(power, "bit_length", NULL);
            long bits = bits_obj ? PyLong_AsLong(bits_obj) : -1;
            Py_XDECREF(bits_obj);
            PyObject *shift = bits < 0 ? NULL : PyLong_FromLong(127 + bits);
            PyObject *numerator = shift ? PyNumber_Lshift(one, shift) : NULL;
            Py_XDECREF(shift);
            PyObject *quotient = numerator ? PyNumber_FloorDivide(numerator, power) : NULL;
            Py_XDECREF(numerator);
            if (!quotient) {
                goto done;
            }
            int failed = top128(quotient, &pow10_table[-j - POW10_JMIN]) < 0;
            Py_DECREF(quotient);
            if (failed) {
                goto done;
            }
            /* The quotient has exactly 128 bits (top128 kept it as is); it stands for
             * 10^-j x 2^(127 + L). */
            pow10_table[-j - POW10_JMIN].exponent = -(int)(127 + bits);
        }
        PyObject *next = PyNumber_Multiply(power, ten);
        if (!next) {
            goto done;
        }
        Py_SETREF(power, next);
    }
    pow10_ready = 1;
    rc = 0;
done:
    Py_XDECREF(ten);
    Py_XDECREF(power);
    Py_XDECREF(one);
    return rc;
}

/* Distances are fixed-point numbers with 64 fractional bits; this many units of 2^-64 exceed
 * every rounding error of the computation (about 2), so a decision outside it is certain. */
#define MARGIN 8

/* Whether a candidate at ``distance`` from v lies inside the rounding half-gap ``gap``:
 * 1 certainly, 0 certainly not, -1 too close to call. */
static inline int within(u128 distance, u128 gap) {
    if (distance + MARGIN < gap) {
        return 1;
    }
    if (distance > gap + MARGIN) {
        return 0;
    }
    return -1;
}

/*
 * Shortest digits from 128-bit arithmetic. With k = floor(log10(2^q)), v = c x 2^q scaled by
 * 10^-k is T = c x w, where w = 2^q x 10^-k lies in [1, 10): the decimals that read back as v
 * are the numbers within a half-gap of T (w/2 above; below too, except w/4 when c is a power of
 * two whose lower neighbour is closer). That interval is
 * narrower than 10, so it holds at most one multiple of 10: when it does, that is the shortest
 * decimal; otherwise the shortest decimals are the integers inside, of which the nearest to T
 * is the one printed. T and the gaps are approximated within MARGIN; a candidate too close to a
 * boundary or a tie to decide makes this return 0 and the exact path decides.
 */
static int shortest_scaled(double v, Shortest *d) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    uint64_t fraction = bits & ((1ULL << 52) - 1);
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t c = biased ? fraction | (1ULL << 52) : fraction;
    int q = biased ? biased - 1075 : -1074;
    int lower_closer = fraction == 0 && biased > 1;
    int64_t scaled_q = (int64_t)q * 315653;
    int k = (int)(scaled_q >= 0 ? scaled_q >> 20 : -((-scaled_q + (1 << 20) - 1) >> 20));
    int j = -k;
    if (!pow10_ready || j < POW10_JMIN || j > POW10_JMAX || c == 0) {
        return 0;
    }
    const Pow10 *p = &pow10_table[j - POW10_JMIN];
    /* T x 2^64 = (c x F) >> shift. The table makes shift 60..63 for every q; the error bound
     * (below c / 2^shift + 1 < 2 units) needs shift >= 53. */
    int shift = -(q + p->exponent) - 64;
    if (shift < 56 || shift > 63) {
        return 0;
    }
    /* c x F, a 181-bit number, as high x 2^64 + bottom; shifted right it fits 121 bits. */
    u128 low_product = (u128)c * p->lo;
    u128 high_product = (u128)c * p->hi + (uint64_t)(low_product >> 64);
    uint64_t bottom = (uint64_t)low_product;
    u128 scaled = (high_product << (64 - shift)) | (bottom >> shift);
    u128 f = ((u128)p->hi << 64) | p->lo;
    u128 gap_above = f >> (shift + 1);
    u128 gap_below = lower_closer ? gap_above >> 1 : gap_above;
    u128 one = (u128)1 << 64;
    uint64_t integer = (uint64_t)(scaled >> 64);
    uint64_t low10 = integer - integer % 10;
    u128 below10 = scaled - ((u128)low10 << 64); /* T - low10 >= 0 */
    u128 above10 = ((u128)(low10 + 10) << 64) - scaled;
    int in_low = within(below10, gap_below);
    int in_high = within(above10, gap_above);
    if (in_low < 0 || in_high < 0 || (in_low && in_high)) {
        return 0;
    }
    uint64_t answer;
    if (in_low || in_high) {
        answer = in_low ? low10 : low10 + 10;
    } else {
        u128 below = scaled & (one - 1);
        u128 above = one - below;
        int in_floor = within(below, gap_below);
        int in_ceil = within(above, gap_above);
        if (in_floor < 0 || in_ceil < 0 || (!in_floor && !in_ceil)) {
            return 0;
        }
        if (in_floor && in_ceil) {
            if (below + MARGIN < above) {
                in_ceil = 0;
            } else if (above + MARGIN < below) {
                in_floor = 0;
            } else {
                return 0; /* a tie, or too close to call */
            }
        }
        answer = in_floor ? integer : integer + 1;
    }
    if (answer == 0) {
        return 0;
    }
    d->digits = answer;
    d->exponent10 = k;
    return 1;
}
#else
static int build_pow10_table(void) { return 0; }
static int shortest_scaled(double v, Shortest *d) {
    (void)v;
    (void)d;
    return 0;
}
#endif

/* Python's shortest repr digits for the rest (values too close to a boundary to decide). */
static int shortest_exact(double v, Shortest *d) {
    char *text = PyOS_double_to_string(v, 'r', 0, 0, NULL);
    if (!text) {
        return ENC_ERROR;
    }
    uint64_t digits = 0;
    int count = 0, after_point = 0, point = 0;
    const char *p = text;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = 1;
        } else if (*p >= '0' && *p <= '9' && count < 19) {
            digits = digits * 10 + (uint64_t)(*p - '0');
            count += digits != 0;
            after_point += point;
        }
    }
    int exponent = *p == 'e' ? atoi(p + 1) : 0;
    PyMem_Free(text);
    if (digits == 0) { /* cannot happen for v > 0; decline rather than loop */
        return ENC_DECLINE;
    }
    d->digits = digits;
    d->exponent10 = exponent - after_point;
    return ENC_OK;
}

/*
 * Write digits x 10^exponent10 the way orjson (relaxed) or Python's repr (canonical) does. With
 * decpt the position of the decimal point (value = 0.DIGITS x 10^decpt), both use an exponent
 * when decpt > 16, and below decpt -4 (orjson: 0.00001 / 1e-6) or -3 (repr: 0.0001 / 1e-05);
 * repr writes the exponent with at least two digits, both always sign it. The caller reserved
 * room for the longest form (about 25 bytes).
 */
static void put_shortest(Encoder *e, int negative, Shortest d, int python_repr) {
    strip_zeros(&d);
    int n = count_digits(d.digits);
    int decpt = n + d.exponent10;
    char *out = e->buf + e->len;
    if (negative) {
        *out++ = '-';
    }
    if (decpt <= (python_repr ? -4 : -5) || decpt > 16) {
        /* d.ddd: digits at out[1..n], the first moved left over the point */
        digits_before(out + 1 + n, d.digits);
        out[0] = out[1];
        if (n > 1) {
            out[1] = '.';
            out += n + 1;
        } else {
            out += 1;
        }
        int exponent = decpt - 1;
        *out++ = 'e';
        *out++ = exponent < 0 ? '-' : '+';
        unsigned magnitude = (unsigned)(exponent < 0 ? -exponent : exponent);
        int width = magnitude >= 100 ? 3 : (magnitude >= 10 || python_repr) ? 2 : 1;
        for (int i = width - 1; i >= 0; i--) {
            out[i] = (char)('0' + magnitude % 10);
            magnitude /= 10;
        }
        out += width;
    } else if (decpt <= 0) { /* 0.000ddd */
        *out++ = '0';
        *out++ = '.';
        for (int i = 0; i < -decpt; i++) {
            *out++ = '0';
        }
        digits_before(out + n, d.digits);
        out += n;
    } else if (decpt >= n) { /* ddd000.0 */
        digits_before(out + n, d.digits);
        out += n;
        for (int i = n; i < decpt; i++) {
            *out++ = '0';
        }
        *out++ = '.';
        *out++ = '0';
    } else { /* ddd.ddd: digits at out[1..n], the whole part moved left over the point */
        digits_before(out + 1 + n, d.digits);
        for (int i = 0; i < decpt; i++) {
            out[i] = out[i + 1];
        }
        out[decpt] = '.';
        out += n + 1;
    }
    e->len = (size_t)(out - e->buf);
}

/* The number's text as orjson (relaxed) or repr (canonical) writes it; v finite. */
static int put_finite_double(Encoder *e, double v, int python_repr) {
    if (reserve(e, 48) < 0) {
        return ENC_ERROR;
    }
    int negative = signbit(v) ? 1 : 0;
    double magnitude = fabs(v);
    if (magnitude == 0.0) {
        if (negative) {
            PUT_LITERAL(e, "-0.0");
        } else {
            PUT_LITERAL(e, "0.0");
        }
        return ENC_OK;
    }
    Shortest d;
    if (!shortest_scaled(magnitude, &d)) {
        int rc = shortest_exact(magnitude, &d);
        if (rc != ENC_OK) {
            return rc;
        }
    }
    put_shortest(e, negative, d, python_repr);
    return ENC_OK;
}

static int put_double(Encoder *e, double v) {
    if (!e->canonical && isfinite(v)) {
        return put_finite_double(e, v, 0);
    }
    if (reserve(e, 40) < 0) {
        return ENC_ERROR;
    }
    PUT_LITERAL(e, "{\"$numberDouble\":\"");
    if (isnan(v)) {
        PUT_LITERAL(e, "NaN\"}");
        return ENC_OK;
    }
    if (isinf(v)) {
        if (v < 0) {
            PUT_LITERAL(e, "-Infinity\"}");
        } else {
            PUT_LITERAL(e, "Infinity\"}");
        }
        return ENC_OK;
    }
    int rc = put_finite_double(e, v, 1);
    if (rc != ENC_OK) {
        return rc;
    }
    if (reserve(e, 2) < 0) {
        return ENC_ERROR;
    }
    PUT_LITERAL(e, "\"}");
    return ENC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Other scalar types                                                                         */
/* ------------------------------------------------------------------------------------------ */

static inline uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t read_u64(const uint8_t *p) {
    return (uint64_t)read_u32(p) | ((uint64_t)read_u32(p + 4) << 32);
}

/* Bytes of the value of BSON type ``type`` at p (avail bytes there), for code that walks the
 * elements of a document without writing them; ENC_DECLINE when the value does not fit in avail,
 * a string or sub-document lacks its final NUL, or the type is unknown. */
static inline int bson_value_size(uint8_t type, const uint8_t *p, size_t avail, size_t *size) {
    uint64_t n;
    switch (type) {
    case 0x01: case 0x09: case 0x11: case 0x12: n = 8; break;
    case 0x02: case 0x0D: case 0x0E: /* string, code, symbol */
        if (avail < 5) {
            return ENC_DECLINE;
        }
        n = 4 + (uint64_t)read_u32(p);
        if (n < 5 || n > avail || p[n - 1] != 0) {
            return ENC_DECLINE;
        }
        break;
    case 0x03: case 0x04: /* document, array */
        if (avail < 5) {
            return ENC_DECLINE;
        }
        n = read_u32(p);
        if (n < 5 || n > avail || p[n - 1] != 0) {
            return ENC_DECLINE;
        }
        break;
    case 0x0F: n = avail < 4 ? UINT64_MAX : read_u32(p); break; /* code with scope: its length */
    case 0x05: n = avail < 5 ? UINT64_MAX : 5 + (uint64_t)read_u32(p); break;
    case 0x07: n = 12; break;
    case 0x08: n = 1; break;
    case 0x0C: n = avail < 4 ? UINT64_MAX : 4 + (uint64_t)read_u32(p) + 12; break; /* DBPointer */
    case 0x10: n = 4; break;
    case 0x13: n = 16; break;
    case 0x06: case 0x0A: case 0x7F: case 0xFF: n = 0; break;
    case 0x0B: { /* regex: two C strings */
        const uint8_t *first = memchr(p, 0, avail);
        const uint8_t *second =
            first ? memchr(first + 1, 0, (size_t)(p + avail - first - 1)) : NULL;
        if (!second) {
            return ENC_DECLINE;
        }
        n = (uint64_t)(second + 1 - p);
        break;
    }
    default: return ENC_DECLINE;
    }
    if (n > avail) {
        return ENC_DECLINE;
    }
    *size = (size_t)n;
    return ENC_OK;
}

static int put_int32(Encoder *e, int32_t v) {
    if (reserve(e, 40) < 0) {
        return ENC_ERROR;
    }
    if (e->canonical) {
        PUT_LITERAL(e, "{\"$numberInt\":\"");
        put_int64(e, v);
        PUT_LITERAL(e, "\"}");
    } else {
        put_int64(e, v);
    }
    return ENC_OK;
}

/* Relaxed mode keeps an Int64 that fits 32 bits typed (see extjson's module docstring). */
static int put_int64_value(Encoder *e, int64_t v) {
    if (reserve(e, 48) < 0) {
        return ENC_ERROR;
    }
    if (e->canonical || (v >= INT32_MIN && v <= INT32_MAX)) {
        PUT_LITERAL(e, "{\"$numberLong\":\"");
        put_int64(e, v);
        PUT_LITERAL(e, "\"}");
    } else {
        put_int64(e, v);
    }
    return ENC_OK;
}

/* Gregorian date of a day count since 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day) {
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int64_t)yoe + era * 400 + (*month <= 2);
}

static void put_digits(Encoder *e, unsigned v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        e->buf[e->len + (size_t)i] = (char)('0' + v % 10);
        v /= 10;
    }
    e->len += (size_t)width;
}

/* Latest millisecond Python's datetime holds (9999-12-31T23:59:59.999Z). */
#define MAX_DATETIME_MS 253402300799999LL

/* A date as ISO-8601 UTC text with milliseconds, 2024-01-01T00:00:00.000Z, for any ms in
 * Python's datetime range (callers check it; earlier dates than 1970 included). */
static void put_iso_datetime(Encoder *e, int64_t ms) {
    int64_t days = ms / 86400000, rest = ms % 86400000;
    if (rest < 0) {
        days -= 1;
        rest += 86400000;
    }
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);
    unsigned seconds = (unsigned)(rest / 1000);
    put_digits(e, (unsigned)year, 4);
    put_char(e, '-');
    put_digits(e, month, 2);
    put_char(e, '-');
    put_digits(e, day, 2);
    put_char(e, 'T');
    put_digits(e, seconds / 3600, 2);
    put_char(e, ':');
    put_digits(e, seconds / 60 % 60, 2);
    put_char(e, ':');
    put_digits(e, seconds % 60, 2);
    put_char(e, '.');
    put_digits(e, (unsigned)(rest % 1000), 3);
    put_char(e, 'Z');
}

/* Relaxed: ISO text for 1970..9999 (datetime), else the millisecond count (as for DatetimeMS and
 * pre-1970 dates). Canonical: always the count. */
static int put_datetime(Encoder *e, int64_t ms) {
    if (reserve(e, 64) < 0) {
        return ENC_ERROR;
    }
    if (e->canonical || ms < 0 || ms > MAX_DATETIME_MS) {
        PUT_LITERAL(e, "{\"$date\":{\"$numberLong\":\"");
        put_int64(e, ms);
        PUT_LITERAL(e, "\"}}");
        return ENC_OK;
    }
    PUT_LITERAL(e, "{\"$date\":\"");
    put_iso_datetime(e, ms);
    PUT_LITERAL(e, "\"}");
    return ENC_OK;
}

static const char BASE64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding (what base64.b64encode writes); room reserved by the caller. */
static void put_base64(Encoder *e, const uint8_t *data, size_t n) {
    char *out = e->buf + e->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t t = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8) | data[i + 2];
        *out++ = BASE64[t >> 18];
        *out++ = BASE64[(t >> 12) & 63];
        *out++ = BASE64[(t >> 6) & 63];
        *out++ = BASE64[t & 63];
    }
    if (n - i == 1) {
        uint32_t t = (uint32_t)data[i] << 16;
        *out++ = BASE64[t >> 18];
        *out++ = BASE64[(t >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t t = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8);
        *out++ = BASE64[t >> 18];
        *out++ = BASE64[(t >> 12) & 63];
        *out++ = BASE64[(t >> 6) & 63];
        *out++ = '=';
    }
    e->len = (size_t)(out - e->buf);
}

static int put_binary(Encoder *e, const uint8_t *data, size_t n, uint8_t subtype) {
    size_t encoded = (n + 2) / 3 * 4;
    if (reserve(e, encoded + 64) < 0) {
        return ENC_ERROR;
    }
    PUT_LITERAL(e, "{\"$binary\":{\"base64\":\"");
    put_base64(e, data, n);
    PUT_LITERAL(e, "\",\"subType\":\"");
    put_char(e, HEX[subtype >> 4]);
    put_char(e, HEX[subtype & 15]);
    PUT_LITERAL(e, "\"}}");
    return ENC_OK;
}

static int put_object_id(Encoder *e, const uint8_t *oid) {
    if (reserve(e, 40) < 0) {
        return ENC_ERROR;
    }
    PUT_LITERAL(e, "{\"$oid\":\"");
    for (int i = 0; i < 12; i++) {
        put_char(e, HEX[oid[i] >> 4]);
        put_char(e, HEX[oid[i] & 15]);
    }
    PUT_LITERAL(e, "\"}");
    return ENC_OK;
}

/* Regex options as bson decodes them (letters of "ilmsux", once each, in that order). */
static int put_regex(Encoder *e, const uint8_t *pattern, size_t pattern_len,
                     const uint8_t *options, size_t options_len) {
    static const char LETTERS[] = "ilmsux";
    int seen[6] = {0};
    for (size_t i = 0; i < options_len; i++) {
        if (options[i] >= 0x80) {
            size_t k = utf8_sequence(options + i, options_len - i);
            if (!k) {
                return ENC_DECLINE;
            }
            i += k - 1;
            continue;
        }
        const char *hit = memchr(LETTERS, options[i], 6);
        if (hit && options[i]) {
            seen[hit - LETTERS] = 1;
        }
    }
    if (reserve(e, 40) < 0) {
        return ENC_ERROR;
    }
    PUT_LITERAL(e, "{\"$regularExpression\":{\"pattern\":");
    int rc = put_string(e, pattern, pattern_len);
    if (rc != ENC_OK) {
        return rc;
    }
    if (reserve(e, 32) < 0) {
        return ENC_ERROR;
    }
    PUT_LITERAL(e, ",\"options\":\"");
    for (int i = 0; i < 6; i++) {
        if (seen[i]) {
            put_char(e, LETTERS[i]);
        }
    }
    PUT_LITERAL(e, "\"}}");
    return ENC_OK;
}

static int put_wrapped_string(Encoder *e, const char *prefix, size_t prefix_len,
                              const uint8_t *s, size_t n) {
    if (reserve(e, prefix_len) < 0) {
        return ENC_ERROR;
    }
    put_bytes(e, prefix, prefix_len);
    int rc = put_string(e, s, n);
    if (rc != ENC_OK) {
        return rc;
    }
    if (reserve(e, 1) < 0) {
        return ENC_ERROR;
    }
    put_char(e, '}');
    return ENC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Documents                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Add a key: 0, or -1 with MemoryError set. */
static int push_key(Keys *keys, const uint8_t *ptr, size_t len) {
    if (keys->n == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 64;
        Key *items = PyMem_Realloc(keys->items, cap * sizeof(Key));
        if (!items) {
            PyErr_NoMemory();
            return -1;
        }
        keys->items = items;
        keys->cap = cap;
    }
    keys->items[keys->n].ptr = ptr;
    keys->items[keys->n].len = len;
    keys->n++;
    return 0;
}

static inline int same_key(const Key *a, const Key *b) {
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

static uint64_t key_hash(const Key *k) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < k->len; i++) {
        h = (h ^ k->ptr[i]) * 1099511628211ULL;
    }
    return h;
}

/* A decoded dict keeps one value per key: a document that repeats a key is declined. */
static int has_duplicate_keys(const Key *keys, size_t n, int *result) {
    *result = 0;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            for (size_t j = 0; j < i; j++) {
                if (same_key(&keys[i], &keys[j])) {
                    *result = 1;
                    return ENC_OK;
                }
            }
        }
        return ENC_OK;
    }
    size_t size = 32;
    while (size < 2 * n) {
        size *= 2;
    }
    size_t *slots = PyMem_Calloc(size, sizeof(size_t)); /* index + 1, 0 = free */
    if (!slots) {
        PyErr_NoMemory();
        return ENC_ERROR;
    }
    for (size_t i = 0; i < n && !*result; i++) {
        size_t slot = (size_t)key_hash(&keys[i]) & (size - 1);
        while (slots[slot]) {
            if (same_key(&keys[slots[slot] - 1], &keys[i])) {
                *result = 1;
                break;
            }
            slot = (slot + 1) & (size - 1);
        }
        slots[slot] = i + 1;
    }
    PyMem_Free(slots);
    return ENC_OK;
}

static int put_container(Encoder *e, const uint8_t *doc, size_t size, int is_array, int depth);

/* A string-like value (int32 length, bytes, NUL) at p, within avail bytes. */
static int read_string(const uint8_t *p, size_t avail, const uint8_t **s, size_t *n) {
    if (avail < 4) {
        return ENC_DECLINE;
    }
    uint32_t length = read_u32(p);
    if (length < 1 || (size_t)length > avail - 4 || p[4 + length - 1] != 0) {
        return ENC_DECLINE;
    }
    *s = p + 4;
    *n = length - 1;
    return ENC_OK;
}

/* One value of BSON type ``type`` at *pos (before end); advances *pos past it. */
static int put_value(Encoder *e, uint8_t type, const uint8_t **pos, const uint8_t *end,
                     int depth) {
    const uint8_t *p = *pos;
    size_t avail = (size_t)(end - p);
    const uint8_t *s;
    size_t n;
    int rc;
    switch (type) {
    case 0x01: /* double */
        if (avail < 8) {
            return ENC_DECLINE;
        }
        {
            uint64_t bits = read_u64(p);
            double v;
            memcpy(&v, &bits, 8);
            rc = put_double(e, v);
        }
        *pos = p + 8;
        return rc;
    case 0x02: /* string */
        if ((rc = read_string(p, avail, &s, &n)) != ENC_OK) {
            return rc;
        }
        *pos = s + n + 1;
        return put_string(e, s, n);
    case 0x03: /* embedded document */
    case 0x04: /* array */
        if (avail < 4) {
            return ENC_DECLINE;
        }
        n = read_u32(p);
        if (n < 5 || n > avail || p[n - 1] != 0) {
            return ENC_DECLINE;
        }
        *pos = p + n;
        return put_container(e, p, n, type == 0x04, depth + 1);
    case 0x05: /* binary */
        if (avail < 5) {
            return ENC_DECLINE;
        }
        n = read_u32(p);
        if (n > avail - 5) {
            return ENC_DECLINE;
        }
        *pos = p + 5 + n;
        if (p[4] == 0x02) { /* old binary: bson strips the inner length */
            if (n < 4 || read_u32(p + 5) != n - 4) {
                return ENC_DECLINE;
            }
            return put_binary(e, p + 9, n - 4, 0x02);
        }
        return put_binary(e, p + 5, n, p[4]);
    case 0x07: /* ObjectId */
        if (avail < 12) {
            return ENC_DECLINE;
        }
        *pos = p + 12;
        return put_object_id(e, p);
    case 0x08: /* bool */
        if (avail < 1 || p[0] > 1) {
            return ENC_DECLINE;
        }
        *pos = p + 1;
        if (reserve(e, 5) < 0) {
            return ENC_ERROR;
        }
        if (p[0]) {
            PUT_LITERAL(e, "true");
        } else {
            PUT_LITERAL(e, "false");
        }
        return ENC_OK;
    case 0x09: /* UTC datetime */
        if (avail < 8) {
            return ENC_DECLINE;
        }
        *pos = p + 8;
        return put_datetime(e, (int64_t)read_u64(p));
    case 0x0A: /* null */
        if (reserve(e, 4) < 0) {
            return ENC_ERROR;
        }
        PUT_LITERAL(e, "null");
        return ENC_OK;
    case 0x0B: /* regex: two C strings */
    {
        const uint8_t *pattern_end = memchr(p, 0, avail);
        if (!pattern_end) {
            return ENC_DECLINE;
        }
        const uint8_t *options = pattern_end + 1;
        const uint8_t *options_end = memchr(options, 0, (size_t)(end - options));
        if (!options_end) {
            return ENC_DECLINE;
        }
        *pos = options_end + 1;
        return put_regex(e, p, (size_t)(pattern_end - p), options,
                         (size_t)(options_end - options));
    }
    case 0x0D: /* code without scope */
        if ((rc = read_string(p, avail, &s, &n)) != ENC_OK) {
            return rc;
        }
        *pos = s + n + 1;
        return put_wrapped_string(e, "{\"$code\":", 9, s, n);
    case 0x10: /* int32 */
        if (avail < 4) {
            return ENC_DECLINE;
        }
        *pos = p + 4;
        return put_int32(e, (int32_t)read_u32(p));
    case 0x11: /* timestamp: increment, then time */
        if (avail < 8) {
            return ENC_DECLINE;
        }
        *pos = p + 8;
        if (reserve(e, 64) < 0) {
            return ENC_ERROR;
        }
        PUT_LITERAL(e, "{\"$timestamp\":{\"t\":");
        put_uint64(e, read_u32(p + 4));
        PUT_LITERAL(e, ",\"i\":");
        put_uint64(e, read_u32(p));
        PUT_LITERAL(e, "}}");
        return ENC_OK;
    case 0x12: /* int64 */
        if (avail < 8) {
            return ENC_DECLINE;
        }
        *pos = p + 8;
        return put_int64_value(e, (int64_t)read_u64(p));
    case 0xFF: /* MinKey */
    case 0x7F: /* MaxKey */
        if (reserve(e, 16) < 0) {
            return ENC_ERROR;
        }
        if (type == 0xFF) {
            PUT_LITERAL(e, "{\"$minKey\":1}");
        } else {
            PUT_LITERAL(e, "{\"$maxKey\":1}");
        }
        return ENC_OK;
    default:
        /* undefined, DBPointer, symbol, code with scope, decimal128, unknown types. */
        return ENC_DECLINE;
    }
}

/*
 * A document or array of ``size`` bytes at doc (size >= 5 and doc[size - 1] == 0 checked by the
 * caller). Elements must tile the bytes between the length and the final NUL exactly.
 */
static int put_container(Encoder *e, const uint8_t *doc, size_t size, int is_array, int depth) {
    if (depth > MAX_DEPTH) {
        return ENC_DECLINE;
    }
    const uint8_t *pos = doc + 4;
    const uint8_t *end = doc + size - 1;
    size_t first_key = e->keys.n;
    int rc;
    if (reserve(e, 1) < 0) {
        return ENC_ERROR;
    }
    put_char(e, is_array ? '[' : '{');
    while (pos < end) {
        uint8_t type = *pos++;
        const uint8_t *key = pos;
        const uint8_t *key_end = find_nul(key, end);
        if (!key_end) {
            return ENC_DECLINE;
        }
        pos = key_end + 1;
        if (pos > end) {
            return ENC_DECLINE;
        }
        if (key != doc + 5) {
            if (reserve(e, 1) < 0) {
                return ENC_ERROR;
            }
            put_char(e, ',');
        }
        if (!is_array) {
            size_t key_len = (size_t)(key_end - key);
            if (key_len && key[0] == '$') {
                return ENC_DECLINE; /* DBRef, wrapper-shaped or "$" fields: Python decides */
            }
            if (push_key(&e->keys, key, key_len) < 0) {
                return ENC_ERROR;
            }
            if ((rc = put_string(e, key, key_len)) != ENC_OK) {
                return rc;
            }
            if (reserve(e, 1) < 0) {
                return ENC_ERROR;
            }
            put_char(e, ':');
        }
        if ((rc = put_value(e, type, &pos, end, depth)) != ENC_OK) {
            return rc;
        }
    }
    if (!is_array) {
        int duplicates;
        Key *keys = e->keys.items + first_key;
        if (has_duplicate_keys(keys, e->keys.n - first_key, &duplicates) < 0) {
            return ENC_ERROR;
        }
        if (duplicates) {
            return ENC_DECLINE;
        }
        e->keys.n = first_key;
    }
    if (reserve(e, 1) < 0) {
        return ENC_ERROR;
    }
    put_char(e, is_array ? ']' : '}');
    return ENC_OK;
}

/*
 * One top-level document that must span exactly ``size`` bytes (what bson.decode requires).
 * On decline the output is rolled back to where the document started.
 */
static inline int put_document(Encoder *e, const uint8_t *doc, size_t size, int newline) {
    size_t start = e->len;
    e->keys.n = 0;
    int rc = ENC_DECLINE;
    if (size >= 5 && size <= INT32_MAX && read_u32(doc) == size && doc[size - 1] == 0) {
        rc = put_container(e, doc, size, 0, 1);
    }
    if (rc == ENC_OK && newline) {
        if (reserve(e, 1) < 0) {
            return ENC_ERROR;
        }
        put_char(e, '\n');
    }
    if (rc != ENC_OK) {
        e->len = start;
    }
    return rc;
}

static void encoder_free(Encoder *e) {
    PyMem_Free(e->buf);
    PyMem_Free(e->keys.items);
    e->buf = NULL;
    e->keys = (Keys){0};
}

static inline PyObject *encoder_result(Encoder *e) {
    PyObject *out = PyBytes_FromStringAndSize(e->buf ? e->buf : "", (Py_ssize_t)e->len);
    encoder_free(e);
    return out;
}

#endif /* HERMES_BSONJSON_H */
