/* Byte scanning shared by Hermes' C codecs (_bsonjson.h and the modules): find the next byte of
 * a string that needs a look eight bytes at a time, and validate UTF-8 exactly as Python's
 * strict decoder does (no overlongs, no surrogates, nothing above U+10FFFF). */

#ifndef HERMES_UTF8_H
#define HERMES_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The high bit of every byte of x that needs a look (non-ASCII, a control character, '"' or
 * '\\'). Borrows only run upwards from a byte that is flagged itself, so the lowest flag is
 * exact (the ones above it may not be). */
static inline uint64_t special_bytes(uint64_t x) {
    uint64_t quote = x ^ (ONES * '"');
    uint64_t backslash = x ^ (ONES * '\\');
    uint64_t t = (x - ONES * 0x20) | (quote - ONES) | (backslash - ONES);
    return ((t & ~x) | x) & HIGHS;
}

/* How many bytes of a block (loaded with memcpy) come before its first special one. */
static inline size_t plain_prefix(uint64_t special) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(special) >> 3;
#else
    (void)special;
    return 0; /* byte by byte */
#endif
}

/* Length of the valid UTF-8 sequence starting at s (lead byte >= 0x80), or 0 if invalid. */
static inline size_t utf8_sequence(const uint8_t *s, size_t avail) {
    uint8_t c = s[0];
    if (c >= 0xC2 && c <= 0xDF) {
        return (avail >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F; /* surrogates */
        }
        return (avail >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xF0) {
            lo = 0x90; /* overlong */
        } else if (c == 0xF4) {
            hi = 0x8F; /* above U+10FFFF */
        }
        return (avail >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                (s[3] & 0xC0) == 0x80)
                   ? 4
                   : 0;
    }
    return 0;
}

/* Whether n bytes at s are valid UTF-8 (eight ASCII bytes at a time). */
static inline int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t block;
            memcpy(&block, s + i, 8);
            if (!(block & HIGHS)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t length = utf8_sequence(s + i, n - i);
        if (!length) {
            return 0;
        }
        i += length;
    }
    return 1;
}

#endif /* HERMES_UTF8_H */
