/* Unit tests for net/http_router: params, precedence, 404 versus 405, the
 * Allow value, HEAD fallback, trailing slashes and pattern validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "net/http_router.h"

static int tags[32]; /* distinct addresses to register as data */
#define D(i) ((void *)&tags[i])

static int match(const http_router_t *r, const char *method, const char *path, http_route_match_t *m) {
  return http_router_match(r, str_from(method), str_from(path), m);
}

static void assert_param(const http_route_match_t *m, size_t i, const char *name, const char *value) {
  assert_true(i < m->nparams);
  if (!str_eq_cstr(m->params[i].name, name) || !str_eq_cstr(m->params[i].value, value))
    fail_msg("param %zu: %.*s=%.*s, want %s=%s", i, (int)m->params[i].name.n, m->params[i].name.p,
             (int)m->params[i].value.n, m->params[i].value.p, name, value);
}

static int setup(void **state) {
  http_router_t *r = http_router_new();
  if (!r) return -1;
  *state = r;
  return 0;
}

static int teardown(void **state) {
  http_router_free(*state);
  return 0;
}

static void test_literal_and_params(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "GET", "/health", D(0)), 0);
  assert_int_equal(http_router_add(r, "GET", "/channels/{id}/messages", D(1)), 0);
  assert_int_equal(http_router_add(r, "POST", "/channels/{id}/messages", D(2)), 0);
  assert_int_equal(http_router_add(r, "GET", "/channels/{cid}/messages/{mid}", D(3)), 0);

  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/health", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(0));
  assert_string_equal(m.pattern, "/health");
  assert_int_equal(m.nparams, 0);

  const char *path = "/channels/c%2F1/messages";
  assert_int_equal(match(r, "POST", path, &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(2));
  assert_string_equal(m.pattern, "/channels/{id}/messages");
  assert_int_equal(m.nparams, 1);
  assert_param(&m, 0, "id", "c%2F1"); /* raw, not decoded */
  assert_ptr_equal(m.params[0].value.p, path + 10); /* a slice of the path */

  assert_int_equal(match(r, "GET", "/channels/7/messages/99", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(3));
  assert_int_equal(m.nparams, 2);
  assert_param(&m, 0, "cid", "7");
  assert_param(&m, 1, "mid", "99");
}

static void test_not_found(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "GET", "/users/{name}", D(0)), 0);
  http_route_match_t m = {.data = D(9)};
  assert_int_equal(match(r, "GET", "/users", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "/users/", &m), HTTP_ROUTE_NOT_FOUND); /* empty param */
  assert_int_equal(match(r, "GET", "/users/a/b", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "/Users/a", &m), HTTP_ROUTE_NOT_FOUND); /* case-sensitive */
  assert_int_equal(match(r, "GET", "*", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "users/a", &m), HTTP_ROUTE_NOT_FOUND);
  assert_ptr_equal(m.data, D(9)); /* untouched on failure */
  char deep[200] = "";
  for (int i = 0; i < HTTP_ROUTER_MAX_SEGMENTS + 1; i++) strcat(deep, "/x");
  assert_int_equal(match(r, "GET", deep, &m), HTTP_ROUTE_NOT_FOUND);
}

static void test_precedence(void **state) {
  http_router_t *r = *state;
  /* the parameter route first, so that order of registration cannot be
   * what makes the literal win */
  assert_int_equal(http_router_add(r, "GET", "/users/{name}", D(0)), 0);
  assert_int_equal(http_router_add(r, "GET", "/users/me", D(1)), 0);
  assert_int_equal(http_router_add(r, "GET", "/a/{x}/c", D(2)), 0);
  assert_int_equal(http_router_add(r, "GET", "/a/b/{y}", D(3)), 0);
  assert_int_equal(http_router_add(r, "GET", "/a/{x}/{z}", D(4)), 0);
  assert_int_equal(http_router_add(r, "DELETE", "/users/{name}", D(5)), 0);

  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/users/me", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(1));
  assert_int_equal(m.nparams, 0);
  assert_int_equal(match(r, "GET", "/users/you", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(0));
  assert_param(&m, 0, "name", "you");
  /* leftmost literal decides */
  assert_int_equal(match(r, "GET", "/a/b/c", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(3));
  assert_int_equal(match(r, "GET", "/a/q/c", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(2));
  assert_int_equal(match(r, "GET", "/a/q/r", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(4));
  /* a literal route without the method does not hide a parameter route with it */
  assert_int_equal(match(r, "DELETE", "/users/me", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(5));
  assert_param(&m, 0, "name", "me");
}

static void test_precedence_other_order(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "GET", "/users/me", D(1)), 0);
  assert_int_equal(http_router_add(r, "GET", "/users/{name}", D(0)), 0);
  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/users/me", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(1));
  assert_int_equal(match(r, "GET", "/users/mee", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(0));
}

static void test_method_not_allowed_and_allow(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "POST", "/items", D(0)), 0);
  assert_int_equal(http_router_add(r, "GET", "/items", D(1)), 0);
  assert_int_equal(http_router_add(r, "PURGE", "/items", D(2)), 0);
  assert_int_equal(http_router_add(r, "DELETE", "/items/{id}", D(3)), 0);
  assert_int_equal(http_router_add(r, "PATCH", "/items/{id}", D(4)), 0);
  assert_int_equal(http_router_add(r, "GET", "/items/special", D(5)), 0);
  assert_int_equal(http_router_add(r, "PURGE", "/items/{id}", D(6)), 0);

  http_route_match_t m;
  assert_int_equal(match(r, "PUT", "/items", &m), HTTP_ROUTE_METHOD_NOT_ALLOWED);
  assert_int_equal(match(r, "get", "/items", &m), HTTP_ROUTE_METHOD_NOT_ALLOWED); /* methods are case-sensitive */
  assert_int_equal(match(r, "GET", "/items/7", &m), HTTP_ROUTE_METHOD_NOT_ALLOWED);
  assert_int_equal(match(r, "GET", "/nothing", &m), HTTP_ROUTE_NOT_FOUND);

  char allow[64];
  size_t n = http_router_allow(r, str_from("/items"), allow, sizeof allow);
  assert_string_equal(allow, "GET, HEAD, POST, PURGE");
  assert_int_equal(n, strlen(allow));
  /* several patterns match; PURGE appears once */
  n = http_router_allow(r, str_from("/items/special"), allow, sizeof allow);
  assert_string_equal(allow, "GET, HEAD, PATCH, DELETE, PURGE");
  n = http_router_allow(r, str_from("/items/7"), allow, sizeof allow);
  assert_string_equal(allow, "PATCH, DELETE, PURGE");
  assert_int_equal(http_router_allow(r, str_from("/nothing"), allow, sizeof allow), 0);
  assert_string_equal(allow, "");
  assert_int_equal(http_router_allow(r, str_from("*"), allow, sizeof allow), 0);

  /* snprintf semantics when the buffer is short */
  char small[8];
  n = http_router_allow(r, str_from("/items"), small, sizeof small);
  assert_int_equal(n, strlen("GET, HEAD, POST, PURGE"));
  assert_string_equal(small, "GET, HE");
  assert_int_equal(http_router_allow(r, str_from("/items"), NULL, 0), n);
}

static void test_head_fallback(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "GET", "/a", D(0)), 0);
  assert_int_equal(http_router_add(r, "HEAD", "/b", D(1)), 0); /* HEAD before GET */
  assert_int_equal(http_router_add(r, "GET", "/b", D(2)), 0);
  assert_int_equal(http_router_add(r, "GET", "/c", D(3)), 0);  /* GET before HEAD */
  assert_int_equal(http_router_add(r, "HEAD", "/c", D(4)), 0);
  assert_int_equal(http_router_add(r, "POST", "/d", D(5)), 0);
  assert_int_equal(http_router_add(r, "HEAD", "/e/{x}", D(6)), 0);
  assert_int_equal(http_router_add(r, "GET", "/e/{y}", D(7)), 0); /* same shape as the HEAD route */
  assert_int_equal(http_router_add(r, "GET", "/e/lit", D(8)), 0);

  http_route_match_t m;
  assert_int_equal(match(r, "HEAD", "/a", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(0));
  assert_int_equal(match(r, "HEAD", "/b", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(1));
  assert_int_equal(match(r, "HEAD", "/c", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(4));
  assert_int_equal(match(r, "GET", "/c", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(3));
  assert_int_equal(match(r, "HEAD", "/d", &m), HTTP_ROUTE_METHOD_NOT_ALLOWED);
  assert_int_equal(match(r, "HEAD", "/e/q", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(6));
  assert_param(&m, 0, "x", "q");
  /* the literal GET route is more specific than the HEAD parameter route */
  assert_int_equal(match(r, "HEAD", "/e/lit", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(8));
  /* GET does not fall back to HEAD */
  assert_int_equal(http_router_add(r, "HEAD", "/only-head", D(9)), 0);
  assert_int_equal(match(r, "GET", "/only-head", &m), HTTP_ROUTE_METHOD_NOT_ALLOWED);
  char allow[32];
  http_router_allow(r, str_from("/only-head"), allow, sizeof allow);
  assert_string_equal(allow, "HEAD");
}

static void test_trailing_slash_and_root(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "GET", "/", D(0)), 0);
  assert_int_equal(http_router_add(r, "GET", "/a", D(1)), 0);
  assert_int_equal(http_router_add(r, "GET", "/b/", D(2)), 0);
  assert_int_equal(http_router_add(r, "GET", "/p/{x}/", D(3)), 0);

  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(0));
  assert_int_equal(match(r, "GET", "/a", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(1));
  assert_int_equal(match(r, "GET", "/a/", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "/b/", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(2));
  assert_int_equal(match(r, "GET", "/b", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "/p/1/", &m), HTTP_ROUTE_FOUND);
  assert_param(&m, 0, "x", "1");
  assert_int_equal(match(r, "GET", "/p/1", &m), HTTP_ROUTE_NOT_FOUND);
  assert_int_equal(match(r, "GET", "//", &m), HTTP_ROUTE_NOT_FOUND);
  /* "/a" and "/a/" are distinct routes */
  assert_int_equal(http_router_add(r, "GET", "/a/", D(4)), 0);
  assert_int_equal(match(r, "GET", "/a/", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(4));
}

static void test_bad_patterns(void **state) {
  http_router_t *r = *state;
  static const char *const bad[] = {
      "", "a", "a/b", "/a//b", "//", "/{}", "/{a", "/a}", "/a{b}", "/{a}b", "/{a}/{a}",
      "/{a-b}", "/{a b}", "/a b", "/a?b", "/a#b", "/{x}/{y}/{z}/{u}/{v}/{w}/{s}/{t}/{q}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (http_router_add(r, "GET", bad[i], D(0)) != -EINVAL) fail_msg("pattern \"%s\" accepted", bad[i]);
  char deep[200] = "";
  for (int i = 0; i < HTTP_ROUTER_MAX_SEGMENTS + 1; i++) strcat(deep, "/x");
  assert_int_equal(http_router_add(r, "GET", deep, D(0)), -EINVAL);
  deep[strlen(deep) - 2] = '\0'; /* exactly the maximum */
  assert_int_equal(http_router_add(r, "GET", deep, D(0)), 0);
  /* 8 parameters is the maximum */
  assert_int_equal(http_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", D(1)), 0);
  assert_int_equal(http_router_add(r, "", "/m", D(0)), -EINVAL);
  assert_int_equal(http_router_add(r, "GE T", "/m", D(0)), -EINVAL);
  assert_int_equal(http_router_add(r, "GET", NULL, D(0)), -EINVAL);
  assert_int_equal(http_router_add(r, NULL, "/m", D(0)), -EINVAL);

  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/1/2/3/4/5/6/7/8", &m), HTTP_ROUTE_FOUND);
  assert_int_equal(m.nparams, HTTP_MAX_PARAMS);
  assert_param(&m, 7, "h", "8");
}

static void test_duplicates(void **state) {
  http_router_t *r = *state;
  assert_int_equal(http_router_add(r, "GET", "/u/{id}", D(0)), 0);
  assert_int_equal(http_router_add(r, "GET", "/u/{id}", D(1)), -EEXIST);
  assert_int_equal(http_router_add(r, "GET", "/u/{name}", D(1)), -EEXIST); /* same shape */
  assert_int_equal(http_router_add(r, "POST", "/u/{name}", D(2)), 0);
  assert_int_equal(http_router_add(r, "GET", "/u/{id}/", D(3)), 0);
  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/u/1", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(0)); /* the failed add changed nothing */
  assert_int_equal(match(r, "POST", "/u/1", &m), HTTP_ROUTE_FOUND);
  assert_param(&m, 0, "name", "1");
}

static void test_many_routes(void **state) {
  http_router_t *r = *state;
  char pat[64];
  for (int i = 0; i < 100; i++) {
    snprintf(pat, sizeof pat, "/r%d/{id}", i);
    assert_int_equal(http_router_add(r, i % 2 ? "POST" : "GET", pat, D(i % 32)), 0);
  }
  http_route_match_t m;
  assert_int_equal(match(r, "POST", "/r77/x", &m), HTTP_ROUTE_FOUND);
  assert_ptr_equal(m.data, D(77 % 32));
  assert_string_equal(m.pattern, "/r77/{id}");
  assert_int_equal(match(r, "GET", "/r77/x", &m), HTTP_ROUTE_METHOD_NOT_ALLOWED);
  assert_int_equal(match(r, "GET", "/r100/x", &m), HTTP_ROUTE_NOT_FOUND);
}

static void test_free_null(void **state) {
  (void)state;
  http_router_free(NULL); /* must be a no-op */
  http_router_t *r = http_router_new();
  assert_non_null(r);
  http_route_match_t m;
  assert_int_equal(match(r, "GET", "/", &m), HTTP_ROUTE_NOT_FOUND);
  char allow[8];
  assert_int_equal(http_router_allow(r, str_from("/"), allow, sizeof allow), 0);
  http_router_free(r);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_literal_and_params),
      T(test_not_found),
      T(test_precedence),
      T(test_precedence_other_order),
      T(test_method_not_allowed_and_allow),
      T(test_head_fallback),
      T(test_trailing_slash_and_root),
      T(test_bad_patterns),
      T(test_duplicates),
      T(test_many_routes),
      cmocka_unit_test(test_free_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
