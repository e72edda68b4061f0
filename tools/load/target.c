/* target.c — see target.h. */
#include "load/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int target_parse(const char *url, target_t *t, const char **err) {
  const char *e = NULL;
  const char *p = url;
  memset(t, 0, sizeof *t);
  if (strncmp(p, "http://", 7) == 0) p += 7;
  else if (strncmp(p, "ws://", 5) == 0) p += 5;
  else { e = "url must start with http:// or ws://"; goto bad; }
  const char *colon = strchr(p, ':');
  if (!colon || colon == p || (size_t)(colon - p) > 15) { e = "url must be http://127.x.x.x:PORT"; goto bad; }
  char ip[16];
  memcpy(ip, p, (size_t)(colon - p));
  ip[colon - p] = '\0';
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno || end == colon + 1 || port < 1 || port > 65535 || (*end && strcmp(end, "/") != 0)) {
    e = "bad port in url";
    goto bad;
  }
  struct in_addr a;
  if (inet_pton(AF_INET, ip, &a) != 1) {
    e = "host must be an IPv4 literal 127.x.x.x (loopback only)";
    return err ? (*err = e, -EPERM) : -EPERM;
  }
  if ((ntohl(a.s_addr) >> 24) != 127) {
    e = "refusing a non-loopback host: storm-load targets 127.x.x.x only";
    return err ? (*err = e, -EPERM) : -EPERM;
  }
  t->addr.sin_family = AF_INET;
  t->addr.sin_addr = a;
  t->addr.sin_port = htons((uint16_t)port);
  snprintf(t->host, sizeof t->host, "%s:%ld", ip, port);
  return 0;
bad:
  if (err) *err = e;
  return -EINVAL;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int target_http(const target_t *t, const char *method, const char *path, const char *token,
                const char *json_body, int *status, buf_t *body) {
  return target_request(t, method, path, token, json_body ? "application/json" : NULL, json_body,
                        json_body ? strlen(json_body) : 0, status, body);
}

int target_request(const target_t *t, const char *method, const char *path, const char *token, const char *ctype,
                   const void *req_body, size_t blen, int *status, buf_t *body) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc = 0;
  buf_t req = BUF_INIT, resp = BUF_INIT;
  if (connect(fd, (const struct sockaddr *)&t->addr, sizeof t->addr) < 0) {
    rc = -errno;
    goto out;
  }
  buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, t->host);
  if (token) buf_printf(&req, "Authorization: Bearer %s\r\n", token);
  if (ctype) buf_printf(&req, "Content-Type: %s\r\n", ctype);
  buf_printf(&req, "Content-Length: %zu\r\n\r\n", blen);
  if (blen) buf_append(&req, req_body, blen);
  if (req.oom) { rc = -ENOMEM; goto out; }
  if ((rc = write_all(fd, req.data, req.len)) < 0) goto out;
  for (;;) {
    if (buf_reserve(&resp, 4096) < 0) { rc = -ENOMEM; goto out; }
    ssize_t n = read(fd, resp.data + resp.len, resp.cap - resp.len - 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
      goto out;
    }
    if (n == 0) break;
    resp.len += (size_t)n;
    resp.data[resp.len] = '\0';
  }
  int code;
  const char *hdr_end = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
  if (!hdr_end || sscanf(resp.data, "HTTP/1.%*d %d", &code) != 1) { rc = -EPROTO; goto out; }
  *status = code;
  buf_reset(body);
  /* Answers here are small JSON with Content-Length (no chunking). */
  buf_append(body, hdr_end + 4, resp.len - (size_t)(hdr_end + 4 - resp.data));
  rc = body->oom ? -ENOMEM : 0;
out:
  close(fd);
  buf_free(&req);
  buf_free(&resp);
  return rc;
}
