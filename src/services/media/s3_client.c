/*
 * s3_client.c — signed S3 requests over libcurl (contract in s3_client.h).
 *
 * Each request borrows an easy handle from a small mutex-guarded pool and
 * gives it back reset (curl_easy_reset keeps live connections, so the
 * next request on that handle skips the TCP/TLS handshake). A payload is
 * hashed first (x-amz-content-sha256) and then streamed again through the
 * read callback; a file payload is read twice with pread, from the page
 * cache the second time, instead of being held in memory.
 */
#include "services/media/s3_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "services/media/s3_xml.h"

#define POOL_MAX 8          /* idle handles kept (idle connections kept alive) */
#define HASH_CHUNK (64 * 1024)

struct s3_client {
  char base[300];      /* "http://host:port" */
  char bucket[64];
  char sigv4[64];      /* "aws:amz:<region>:s3" */
  char access[256];
  char secret[256];
  long connect_ms, stall_ms, total_ms;
  uv_mutex_t mu;
  CURL *idle[POOL_MAX];
  int nidle;
};

static uv_once_t global_once = UV_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int fail_msg(char *err, size_t n, const char *msg) {
  if (err && n) snprintf(err, n, "%s", msg);
  return -EINVAL;
}

/* "scheme://host[:port][/]" or "host[:port]" → c->base. The host part may
 * hold [A-Za-z0-9.-], a port, or a bracketed IPv6 literal; anything else
 * (credentials, a path, a query) is refused rather than guessed at. */
static int parse_endpoint(s3_client_t *c, const char *ep, bool use_ssl, char *err, size_t n) {
  if (!ep || !ep[0]) return fail_msg(err, n, "the endpoint is empty");
  const char *scheme = use_ssl ? "https" : "http";
  const char *h = ep;
  if (strncasecmp(ep, "https://", 8) == 0) {
    scheme = "https";
    h = ep + 8;
  } else if (strncasecmp(ep, "http://", 7) == 0) {
    if (use_ssl) return fail_msg(err, n, "the endpoint says http:// but TLS (MINIO_USE_SSL) is on");
    h = ep + 7;
  } else if (strstr(ep, "://")) {
    return fail_msg(err, n, "the endpoint's scheme must be http:// or https://");
  }
  size_t hl = strlen(h);
  if (hl && h[hl - 1] == '/') hl--;
  if (hl == 0 || hl > 255) return fail_msg(err, n, "the endpoint has no host or is too long");
  for (size_t i = 0; i < hl; i++) {
    char ch = h[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']';
    if (!ok) return fail_msg(err, n, "the endpoint must be scheme://host[:port] (no path, user or query)");
  }
  snprintf(c->base, sizeof c->base, "%s://%.*s", scheme, (int)hl, h);
  return 0;
}

static bool bucket_valid(const char *b) {
  size_t n = b ? strlen(b) : 0;
  if (n < 3 || n > 63) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = b[i];
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
    if (!alnum && ch != '.' && ch != '-') return false;
    if ((i == 0 || i == n - 1) && !alnum) return false;
  }
  return true;
}

static bool region_valid(const char *r) {
  size_t n = strlen(r);
  if (n == 0 || n > 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-')) return false;
  return true;
}

int s3_client_new(const s3_client_opts_t *o, s3_client_t **out, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!o || !out) return fail_msg(err, errlen, "no options");
  uv_once(&global_once, global_init);
  if (global_rc != CURLE_OK) return fail_msg(err, errlen, "libcurl failed to initialise");
  s3_client_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  const char *region = o->region && o->region[0] ? o->region : "us-east-1";
  int rc = parse_endpoint(c, o->endpoint, o->use_ssl, err, errlen);
  if (rc == 0 && !bucket_valid(o->bucket))
    rc = fail_msg(err, errlen, "the bucket name must be 3..63 characters of a-z, 0-9, '.', '-'");
  if (rc == 0 && !region_valid(region))
    rc = fail_msg(err, errlen, "the region must be 1..32 characters of a-z, 0-9, '-'");
  if (rc == 0 && (!o->access_key || !o->access_key[0] || strlen(o->access_key) >= sizeof c->access))
    rc = fail_msg(err, errlen, "the access key is empty or too long");
  if (rc == 0 && (!o->secret_key || !o->secret_key[0] || strlen(o->secret_key) >= sizeof c->secret))
    rc = fail_msg(err, errlen, "the secret key is empty or too long");
  if (rc == 0 && uv_mutex_init(&c->mu) != 0) rc = -ENOMEM;
  if (rc < 0) {
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
  }
  strcpy(c->bucket, o->bucket);
  snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", region);
  strcpy(c->access, o->access_key);
  strcpy(c->secret, o->secret_key);
  c->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
  c->stall_ms = o->stall_timeout_ms > 0 ? o->stall_timeout_ms : 30000;
  c->total_ms = o->total_timeout_ms > 0 ? o->total_timeout_ms : 0;
  *out = c;
  return 0;
}

void s3_client_free(s3_client_t *c) {
  if (!c) return;
  for (int i = 0; i < c->nidle; i++) curl_easy_cleanup(c->idle[i]);
  uv_mutex_destroy(&c->mu);
  sodium_memzero(c->secret, sizeof c->secret);
  free(c);
}

const char *s3_client_bucket(const s3_client_t *c) { return c->bucket; }
const char *s3_client_endpoint(const s3_client_t *c) { return c->base; }

static CURL *handle_take(s3_client_t *c) {
  CURL *h = NULL;
  uv_mutex_lock(&c->mu);
  if (c->nidle > 0) h = c->idle[--c->nidle];
  uv_mutex_unlock(&c->mu);
  return h ? h : curl_easy_init();
}

static void handle_give(s3_client_t *c, CURL *h) {
  curl_easy_reset(h);
  uv_mutex_lock(&c->mu);
  if (c->nidle < POOL_MAX) {
    c->idle[c->nidle++] = h;
    h = NULL;
  }
  uv_mutex_unlock(&c->mu);
  if (h) curl_easy_cleanup(h);
}

ssize_t s3_query_escape(const char *s, char *out, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  if (n == 0) return -ENOSPC;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '-' || ch == '.' || ch == '_' || ch == '~';
    size_t need = keep ? 1 : 3;
    if (o + need > n - 1) {
      out[0] = '\0';
      return -ENOSPC;
    }
    if (keep) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '%';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o] = '\0';
  return (ssize_t)o;
}

/* Keys are built by our callers from hex ids; refuse anything that could
 * change the URL's meaning if that ever stops being true. */
static bool key_valid(const char *k) {
  if (k[0] == '/' || strstr(k, "..") || strstr(k, "//")) return false;
  for (const char *p = k; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '/' || ch == '.' || ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

static bool query_valid(const char *q) {
  for (const char *p = q; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '=' || ch == '&' || ch == '%' || ch == '-' || ch == '.' || ch == '_' || ch == '~'))
      return false;
  }
  return true;
}

/* Hex SHA-256 of the payload; a file payload is read in HASH_CHUNK pieces. */
static int payload_sha256(const s3_body_t *b, char hex[65]) {
  unsigned char d[crypto_hash_sha256_BYTES];
  if (!b || b->fd < 0) {
    crypto_hash_sha256(d, b && b->data ? b->data : (const unsigned char *)"", b ? b->len : 0);
  } else {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char *buf = malloc(HASH_CHUNK);
    if (!buf) return -ENOMEM;
    uint64_t off = b->off, left = b->len;
    while (left > 0) {
      size_t want = left < HASH_CHUNK ? (size_t)left : HASH_CHUNK;
      ssize_t n = pread(b->fd, buf, want, (off_t)off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int e = n < 0 ? -errno : -EIO; /* 0: the file is shorter than promised */
        free(buf);
        return e;
      }
      crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
      off += (uint64_t)n;
      left -= (uint64_t)n;
    }
    free(buf);
    crypto_hash_sha256_final(&st, d);
  }
  sodium_bin2hex(hex, 65, d, sizeof d);
  return 0;
}

typedef struct {
  CURL *h;
  const s3_body_t *body;
  uint64_t sent;
  int read_err;
  void *sink;
  size_t sink_cap, sink_len;
  int64_t want_start; /* the range's first byte, -1 without a range */
  bool overflow;
  bool cut;           /* sink filled from the range's start: the rest dropped */
  s3_result_t *res;
} xfer_t;

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  xfer_t *x = arg;
  size_t cap = size * n;
  uint64_t left = x->body->len - x->sent;
  size_t want = left < cap ? (size_t)left : cap;
  if (want == 0) return 0;
  if (x->body->fd < 0) {
    memcpy(buf, (const char *)x->body->data + x->sent, want);
    x->sent += want;
    return want;
  }
  for (;;) {
    ssize_t r = pread(x->body->fd, buf, want, (off_t)(x->body->off + x->sent));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      x->read_err = r < 0 ? -errno : -EIO;
      return CURL_READFUNC_ABORT;
    }
    x->sent += (uint64_t)r;
    return (size_t)r;
  }
}

/* curl rewinds the payload when it must resend it (a kept-alive
 * connection the server closed just as the request went out). */
static int on_seek(void *arg, curl_off_t offset, int origin) {
  xfer_t *x = arg;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->body->len) return CURL_SEEKFUNC_FAIL;
  x->sent = (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *data, size_t size, size_t n, void *arg) {
  xfer_t *x = arg;
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
  if (x->sink && status >= 200 && status < 300) {
    if (len > x->sink_cap - x->sink_len) {
      /* More than asked for. Starting where we asked, the bytes we wanted
       * are the first ones: keep them and stop the transfer. */
      int64_t start = status == 206 ? x->res->range_start : 0;
      if (x->want_start >= 0 && start == x->want_start) {
        size_t k = x->sink_cap - x->sink_len;
        memcpy((char *)x->sink + x->sink_len, data, k);
        x->sink_len += k;
        x->cut = true;
      } else {
        x->overflow = true;
      }
      return 0; /* aborts the transfer */
    }
    memcpy((char *)x->sink + x->sink_len, data, len);
    x->sink_len += len;
    return len;
  }
  s3_result_t *r = x->res;
  size_t room = S3_SMALL_BODY_MAX - 1 - r->body_len;
  size_t k = len < room ? len : room; /* an oversized XML answer is cut, not refused */
  memcpy(r->body + r->body_len, data, k);
  r->body_len += k;
  r->body[r->body_len] = '\0';
  return len;
}

/* Response headers: ETag, Content-Length, Content-Range's total. A new
 * status line (after "100 Continue" or a redirect) starts over. */
static size_t on_header(char *data, size_t size, size_t n, void *arg) {
  xfer_t *x = arg;
  size_t len = size * n;
  s3_result_t *r = x->res;
  char line[256];
  size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
  memcpy(line, data, k);
  line[k] = '\0';
  while (k && (line[k - 1] == '\r' || line[k - 1] == '\n')) line[--k] = '\0';
  if (strncmp(line, "HTTP/", 5) == 0) {
    r->etag[0] = '\0';
    r->content_length = -1;
    r->total_size = -1;
    r->range_start = -1;
  } else if (strncasecmp(line, "etag:", 5) == 0) {
    const char *v = line + 5;
    while (*v == ' ' || *v == '\t') v++;
    size_t vl = strlen(v);
    r->etag[0] = '\0';
    if (vl < sizeof r->etag) memcpy(r->etag, v, vl + 1); /* longer: no usable ETag */
  } else if (strncasecmp(line, "content-length:", 15) == 0) {
    char *end;
    long long v = strtoll(line + 15, &end, 10);
    if (end != line + 15 && v >= 0) r->content_length = v;
  } else if (strncasecmp(line, "content-range:", 14) == 0) {
    const char *b = strstr(line + 14, "bytes ");
    if (b && b[6] >= '0' && b[6] <= '9') r->range_start = strtoll(b + 6, NULL, 10);
    const char *slash = strrchr(line, '/');
    if (slash && slash[1] >= '0' && slash[1] <= '9') {
      char *end;
      long long v = strtoll(slash + 1, &end, 10);
      if (v >= 0) r->total_size = v;
    }
  }
  return len;
}

static int status_errno(long s) {
  if (s >= 200 && s < 300) return 0;
  switch (s) {
  case 403: return -EACCES;
  case 404: return -ENOENT;
  case 416: return -ERANGE;
  case 400:
  case 409:
  case 411: return -EINVAL;
  case 405:
  case 501: return -ENOTSUP;
  default: return -EIO;
  }
}

static int curl_errno(CURLcode cc) {
  switch (cc) {
  case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
  case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
  case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
  case CURLE_OUT_OF_MEMORY: return -ENOMEM;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_WEIRD_SERVER_REPLY: return -EPROTO;
  default: return -EIO;
  }
}

int s3_client_request(s3_client_t *c, const char *method, const char *key, const char *query,
                      const char *range_hdr, const s3_body_t *body, void *sink, size_t sink_cap,
                      size_t *sink_len, s3_result_t *res) {
  memset(res, 0, offsetof(s3_result_t, body));
  res->body[0] = '\0';
  res->body_len = 0;
  res->content_length = -1;
  res->total_size = -1;
  res->range_start = -1;
  if (sink_len) *sink_len = 0;
  if (!c || !method || (key && !key_valid(key)) || (query && !query_valid(query)) ||
      (body && body->fd < 0 && !body->data && body->len) || (sink && !sink_len))
    return -EINVAL;
  bool is_head = strcmp(method, "HEAD") == 0, is_put = strcmp(method, "PUT") == 0,
       is_post = strcmp(method, "POST") == 0;
  if (!is_head && !is_put && !is_post && strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0)
    return -EINVAL;
  if (body && !is_put && !is_post) return -EINVAL;

  char url[700];
  int ul = snprintf(url, sizeof url, "%s/%s%s%s%s%s", c->base, c->bucket, key && key[0] ? "/" : "",
                    key ? key : "", query && query[0] ? "?" : "", query ? query : "");
  if (ul < 0 || (size_t)ul >= sizeof url) return -EINVAL;

  char hash[65], hdr_hash[100], hdr_range[120];
  int rc = payload_sha256(body, hash);
  if (rc < 0) return rc;
  snprintf(hdr_hash, sizeof hdr_hash, "x-amz-content-sha256: %s", hash);

  CURL *h = handle_take(c);
  if (!h) return -ENOMEM;
  struct curl_slist *hdrs = NULL, *t;
  xfer_t x = {.h = h, .body = body, .sink = sink, .sink_cap = sink_cap, .res = res,
              .want_start = -1};
  if (range_hdr && strncmp(range_hdr, "bytes=", 6) == 0 && range_hdr[6] >= '0' &&
      range_hdr[6] <= '9')
    x.want_start = strtoll(range_hdr + 6, NULL, 10);
  char errbuf[CURL_ERROR_SIZE] = "";
  rc = 0;
  if (!(t = curl_slist_append(hdrs, hdr_hash))) rc = -ENOMEM;
  else hdrs = t;
  if (rc == 0 && range_hdr) {
    snprintf(hdr_range, sizeof hdr_range, "Range: %s", range_hdr);
    if (!(t = curl_slist_append(hdrs, hdr_range))) rc = -ENOMEM;
    else hdrs = t;
  }
  if (rc == 0 && is_post && body && body->len) {
    if (!(t = curl_slist_append(hdrs, "Content-Type: application/xml"))) rc = -ENOMEM;
    else hdrs = t;
  }
  if (rc < 0) {
    curl_slist_free_all(hdrs);
    handle_give(c, h);
    return rc;
  }

  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
  curl_easy_setopt(h, CURLOPT_USERNAME, c->access);
  curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->stall_ms < 1000 ? 1L : c->stall_ms / 1000);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  if (c->total_ms) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->total_ms);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
  static const s3_body_t none = {NULL, -1, 0, 0};
  if (!body) x.body = &none;
  if (is_head) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (is_put) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x.body->len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &x);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
  } else if (is_post) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x.body->len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &x);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
  } else if (strcmp(method, "DELETE") == 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  }

  CURLcode cc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
  curl_slist_free_all(hdrs);
  if (x.read_err) {
    rc = x.read_err;
  } else if (x.overflow) {
    rc = -EOVERFLOW;
  } else if (x.cut) {
    rc = 0; /* cc is CURLE_WRITE_ERROR: we stopped it, with what we wanted */
  } else if (cc != CURLE_OK) {
    rc = curl_errno(cc);
    snprintf(res->message, sizeof res->message, "%.159s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
    res->status = 0;
  } else {
    rc = status_errno(res->status);
  }
  if (rc < 0 && res->status && res->body_len) {
    s3_xml_text(res->body, res->body_len, "Code", NULL, res->code, sizeof res->code);
    s3_xml_text(res->body, res->body_len, "Message", NULL, res->message, sizeof res->message);
  }
  if (sink_len) *sink_len = x.sink_len;
  if (cc != CURLE_OK) {
    /* A failed transfer may leave the connection in an unknown state:
     * do not hand it to the next request. */
    curl_easy_cleanup(h);
  } else {
    handle_give(c, h);
  }
  return rc;
}

void s3_result_describe(const s3_result_t *res, char *out, size_t n) {
  if (!res->status)
    snprintf(out, n, "no answer: %s", res->message[0] ? res->message : "transport error");
  else if (res->code[0])
    snprintf(out, n, "%ld %s%s%s", res->status, res->code, res->message[0] ? ": " : "", res->message);
  else
    snprintf(out, n, "HTTP %ld", res->status);
}
