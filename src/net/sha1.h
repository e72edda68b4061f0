/*
 * sha1.h — SHA-1 (FIPS 180-4) of one buffer, for the WebSocket handshake
 * (Sec-WebSocket-Accept) only. SHA-1 is broken for collision resistance;
 * RFC 6455 uses it as a fixed transform, not for security, so nothing else
 * should call this.
 *
 * Why not libcrypto: OpenSSL 3 resolves EVP_sha1() through its provider
 * machinery on first use, which faults ~2 MB of library code and heap into
 * a process that otherwise never touches libcrypto on this path (measured
 * in docs/benchmarks.md, S3). This is ~80 lines and allocation-free.
 *
 * Pure function over caller memory: no allocation, no global state, safe
 * from any thread. Cannot fail.
 */
#ifndef STORM_NET_SHA1_H
#define STORM_NET_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_LEN 20

/* Writes the 20-byte digest of data[0..len) to out (data may be NULL when len is 0). */
void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN]);

#endif
