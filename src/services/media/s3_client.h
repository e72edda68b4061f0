/*
 * s3_client.h — signed, blocking requests to one bucket of an
 * S3-compatible server (AWS S3, MinIO, s3rver), through libcurl.
 *
 * Signing is libcurl's built-in AWS Signature V4 (CURLOPT_AWS_SIGV4
 * "aws:amz:<region>:s3"). curl 7.88 leaves two things to us, which this
 * module does: it sends no x-amz-content-sha256 header (S3 requires one;
 * we send the hex SHA-256 of the payload, of "" when there is none), and
 * it signs the query string exactly as given, so every query passed here
 * must already be canonical: parameters sorted by name, each "name=value"
 * (with "=" even when empty: "uploads="), values percent-encoded
 * (s3_query_escape). Addressing is path-style:
 * <endpoint>/<bucket>/<key>; keys are made by the caller from checked
 * characters only (s3_client_request refuses anything outside
 * [A-Za-z0-9/._-]), so no client byte reaches a URL.
 *
 * Connections are reused: a small pool of curl easy handles, each keeping
 * its connection alive between requests (curl_easy_reset keeps the
 * connection cache). TLS certificates are always verified.
 *
 * Threads: s3_client_new/free on one thread with no request running;
 * s3_client_request from any number of threads at once (libuv's pool):
 * each request takes a handle of its own. Requests block: never call them
 * on the loop thread.
 *
 * Errors: negative errno values. From the HTTP status: 403 -EACCES,
 * 404 -ENOENT, 416 -ERANGE, 400/409/411 -EINVAL, 501/405 -ENOTSUP, other
 * non-2xx -EIO; transport: -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH
 * (name or host not reachable), -EPROTO (TLS or protocol failure), -EIO;
 * -ENOMEM. s3_result_t carries the details (status, S3 error Code and
 * Message, curl's error text) for logs.
 */
#ifndef STORM_SERVICES_MEDIA_S3_CLIENT_H
#define STORM_SERVICES_MEDIA_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct s3_client s3_client_t;

typedef struct {
  const char *endpoint;   /* "http(s)://host[:port]" ("host:port": scheme from use_ssl) */
  bool use_ssl;           /* https; an explicit http:// endpoint with use_ssl is refused */
  const char *region;     /* "us-east-1" when NULL or "" */
  const char *access_key; /* required */
  const char *secret_key; /* required */
  const char *bucket;     /* S3 bucket naming rules: 3..63 of [a-z0-9.-] */
  long connect_timeout_ms;/* 0 = 5000 */
  long stall_timeout_ms;  /* no byte moved for this long aborts a request; 0 = 30000 */
  long total_timeout_ms;  /* a whole request, for probes; 0 = no limit (large parts) */
} s3_client_opts_t;

/* Copies what it needs from o. Returns 0, -EINVAL (with a reason in err,
 * which may be NULL) or -ENOMEM. */
int s3_client_new(const s3_client_opts_t *o, s3_client_t **out, char *err, size_t errlen);
void s3_client_free(s3_client_t *c);

/* The request payload: none, memory, or len bytes of a file from off
 * (streamed with pread: never held whole). */
typedef struct {
  const void *data; /* memory payload (data != NULL or len == 0) */
  int fd;           /* >= 0: file payload instead of data */
  uint64_t off;
  uint64_t len;
} s3_body_t;

#define S3_BODY_NONE ((s3_body_t){NULL, -1, 0, 0})

typedef struct {
  long status;               /* HTTP status; 0 when no answer came */
  char code[64];             /* S3 error <Code>, "" if none */
  char message[160];         /* S3 error <Message>, or curl's error text */
  char etag[80];             /* ETag response header, quotes kept */
  int64_t content_length;    /* Content-Length response header, -1 if none */
  int64_t total_size;        /* the "/total" of Content-Range, -1 if none */
  int64_t range_start;       /* the first byte of Content-Range, -1 if none */
  /* Response body when no sink buffer was given (XML answers), cut at
   * S3_SMALL_BODY_MAX bytes. */
  char body[16384];
  size_t body_len;
} s3_result_t;

#define S3_SMALL_BODY_MAX (sizeof(((s3_result_t *)0)->body))

/*
 * One request. method "GET", "HEAD", "PUT", "POST", "DELETE"; key NULL or
 * "" addresses the bucket itself; query NULL or canonical (see above);
 * range_hdr NULL or "bytes=a-b"; body may be NULL (no payload). A 2xx
 * body goes to sink (sink_cap bytes at most; *sink_len gets the count;
 * more than sink_cap is -EOVERFLOW, except that an answer starting at the
 * range's first byte but running past its end — s3rver answers
 * "bytes=0-0" with the whole object — is cut at sink_cap) when sink is
 * given, otherwise to
 * res->body. An error body always goes to res->body, parsed into
 * res->code and res->message. Returns 0 on 2xx or a negative errno; res
 * is filled in every case.
 */
int s3_client_request(s3_client_t *c, const char *method, const char *key, const char *query,
                      const char *range_hdr, const s3_body_t *body, void *sink, size_t sink_cap,
                      size_t *sink_len, s3_result_t *res);

/* "403 SignatureDoesNotMatch: The request signature ..." or
 * "no answer: Connection refused" — one line for logs. */
void s3_result_describe(const s3_result_t *res, char *out, size_t n);

/* Percent-encodes s for a canonical query value (RFC 3986 unreserved
 * kept). Returns the length, or -ENOSPC if it does not fit in n - 1. */
ssize_t s3_query_escape(const char *s, char *out, size_t n);

/* The bucket's name and the endpoint as used (for logs). */
const char *s3_client_bucket(const s3_client_t *c);
const char *s3_client_endpoint(const s3_client_t *c);

#endif
