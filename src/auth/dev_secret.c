#include "auth/dev_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_HEX 64

static int read_secret(const char *path, char *out, size_t outlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  char buf[SECRET_HEX + 2];
  ssize_t n = read(fd, buf, sizeof buf);
  int err = errno;
  close(fd);
  if (n < 0) return -err;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  if (n != SECRET_HEX || outlen < SECRET_HEX + 1) return -EINVAL;
  memcpy(out, buf, SECRET_HEX);
  out[SECRET_HEX] = '\0';
  return 0;
}

int dev_secret_load(const char *data_dir, char *out, size_t outlen) {
  if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) return -errno;
  char path[4096];
  if (snprintf(path, sizeof path, "%s/jwt_secret", data_dir) >= (int)sizeof path) return -ENAMETOOLONG;
  int rc = read_secret(path, out, outlen);
  if (rc != -ENOENT) return rc;
  if (outlen < SECRET_HEX + 1) return -ENOSPC;
  unsigned char raw[SECRET_HEX / 2];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(out, outlen, raw, sizeof raw);
  /* O_EXCL: if two processes race, one writes and both read the same file. */
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EEXIST ? read_secret(path, out, outlen) : -errno;
  char line[SECRET_HEX + 1];
  memcpy(line, out, SECRET_HEX);
  line[SECRET_HEX] = '\n';
  ssize_t w = write(fd, line, sizeof line);
  int err = errno;
  if (w == (ssize_t)sizeof line && fsync(fd) == 0) {
    close(fd);
    return 0;
  }
  close(fd);
  unlink(path);
  return w < 0 ? -err : -EIO;
}
