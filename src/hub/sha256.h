/* sha256.h - SHA-256 (FIPS 180-4), to verify downloads against the
 * checksum the hub lists for Git LFS files. Streaming: init, update with
 * any piece sizes, final. */
#ifndef AX_HUB_SHA256_H
#define AX_HUB_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t len;    /* bytes hashed so far */
    uint8_t buf[64]; /* partial block */
    size_t nbuf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
/* Writes the digest as 64 lowercase hex digits + NUL. */
void sha256_final_hex(struct sha256 *s, char out[65]);

#endif
