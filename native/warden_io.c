/*
 * Warden's native socket I/O for the relay hot path (see src/proxy/native-io.ts).
 *
 * Node's net.Socket costs several microseconds of JavaScript per read and per
 * write (stream state, write requests, deferred callbacks). A relay that moves
 * one small message each way per statement spends most of its CPU there. This
 * addon owns a connected socket's file descriptor (a dup of the one Node held),
 * polls it on Node's own event loop with uv_poll, reads into one buffer shared
 * with JavaScript, and writes synchronously with send(), queueing only what the
 * kernel does not take. JavaScript sees one call per read and makes one call
 * per write; everything else (framing, decisions) stays in JavaScript.
 *
 * Contract: the read buffer is valid only during the onRead call.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>

#define READ_SIZE (64 * 1024)

typedef struct conn {
  uv_poll_t poll;
  napi_env env;
  int fd;
  int want_read;
  int events;       /* events the poll is started with (0: stopped) */
  int closing;      /* uv_close called */
  int end_after_drain;
  int in_callback;
  int refs;         /* the poll handle and the JavaScript external: freed when both are gone */
  char *q;          /* bytes the kernel has not taken yet */
  size_t q_off, q_len, q_cap;
  napi_ref on_read, on_drain, on_error, resource;
  napi_async_context actx;
} conn;

static char *read_buf;
static napi_ref read_buf_ref;

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(conn *c) {
  if (c->closing) return;
  int ev = (c->want_read ? UV_READABLE : 0) | (c->q_len > 0 ? UV_WRITABLE : 0);
  if (ev == c->events) return;
  c->events = ev;
  if (ev == 0) uv_poll_stop(&c->poll);
  else uv_poll_start(&c->poll, ev, on_poll);
}

static void release(conn *c) {
  if (--c->refs == 0) free(c);
}

/* The poll handle is closed: close the descriptor and drop the references to JavaScript. */
static void on_close(uv_handle_t *h) {
  conn *c = (conn *)h->data;
  napi_env env = c->env;
  close(c->fd);
  c->fd = -1;
  free(c->q);
  c->q = NULL;
  c->q_len = c->q_off = c->q_cap = 0;
  napi_delete_reference(env, c->on_read);
  napi_delete_reference(env, c->on_drain);
  napi_delete_reference(env, c->on_error);
  napi_async_destroy(env, c->actx);
  napi_delete_reference(env, c->resource);
  release(c);
}

/* The JavaScript external was collected. */
static void on_finalize(napi_env env, void *data, void *hint) {
  release((conn *)data);
}

static void do_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->poll, on_close);
}

/* Call a JavaScript callback with one number, as a top-level callback (ticks and microtasks run after). */
static void call_js(conn *c, napi_ref fn_ref, double arg) {
  napi_env env = c->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, argv[1];
  napi_get_reference_value(env, fn_ref, &fn);
  napi_get_reference_value(env, c->resource, &recv);
  napi_create_double(env, arg, &argv[0]);
  c->in_callback++;
  napi_value result;
  napi_status st = napi_make_callback(env, c->actx, recv, fn, 1, argv, &result);
  c->in_callback--;
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void flush_queue(conn *c) {
  while (c->q_len > 0) {
    ssize_t n = send(c->fd, c->q + c->q_off, c->q_len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      int e = errno;
      c->q_len = 0;
      update_poll(c);
      call_js(c, c->on_error, e);
      return;
    }
    c->q_off += (size_t)n;
    c->q_len -= (size_t)n;
  }
  c->q_off = 0;
  update_poll(c);
  if (c->end_after_drain) shutdown(c->fd, SHUT_WR);
  call_js(c, c->on_drain, 0);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  conn *c = (conn *)h->data;
  if (c->closing) return;
  if (status < 0) {
    /* libuv stops the handle and says UV_EBADF for any POLLERR: the socket knows the real error. */
    c->events = 0;
    c->want_read = 0;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = status == UV_EBADF ? ECONNRESET : -status;
    call_js(c, c->on_error, err);
    return;
  }
  if ((events & UV_WRITABLE) && c->q_len > 0) {
    flush_queue(c);
    if (c->closing) return;
  }
  if ((events & UV_READABLE) && c->want_read) {
    for (int i = 0; i < 16 && c->want_read && !c->closing; i++) {
      ssize_t n = recv(c->fd, read_buf, READ_SIZE, 0);
      if (n > 0) {
        call_js(c, c->on_read, (double)n);
        if (n < READ_SIZE) break;
        continue;
      }
      if (n == 0) {
        c->want_read = 0;
        update_poll(c);
        call_js(c, c->on_error, 0);
        break;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        int e = errno;
        c->want_read = 0;
        update_poll(c);
        call_js(c, c->on_error, e);
      }
      break;
    }
  }
}

static conn *unwrap(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "not a native connection");
    return NULL;
  }
  return (conn *)p;
}

/* open(fd, onRead, onDrain, onError, resource) -> external. Dups fd; the caller closes its own. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  int fl = fcntl(nfd, F_GETFL);
  fcntl(nfd, F_SETFL, fl | O_NONBLOCK);
  conn *c = calloc(1, sizeof(conn));
  if (!c) {
    close(nfd);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  c->env = env;
  c->fd = nfd;
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init_socket(loop, &c->poll, nfd) != 0) {
    close(nfd);
    free(c);
    napi_throw_error(env, NULL, "uv_poll_init_socket failed");
    return NULL;
  }
  c->poll.data = c;
  CHECK(napi_create_reference(env, argv[1], 1, &c->on_read));
  CHECK(napi_create_reference(env, argv[2], 1, &c->on_drain));
  CHECK(napi_create_reference(env, argv[3], 1, &c->on_error));
  CHECK(napi_create_reference(env, argv[4], 1, &c->resource));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "WardenNativeSocket", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, argv[4], name, &c->actx));
  napi_value ext;
  c->refs = 2;
  CHECK(napi_create_external(env, c, on_finalize, NULL, &ext));
  return ext;
}

static napi_value js_set_reading(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn *c = unwrap(env, argv[0]);
  if (!c) return NULL;
  bool on;
  CHECK(napi_get_value_bool(env, argv[1], &on));
  if (c->closing) return NULL;
  c->want_read = on ? 1 : 0;
  update_poll(c);
  return NULL;
}

/* write(conn, buffer, start, end) -> 1 all sent, 0 queued (wait for drain), -errno on error. */
static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn *c = unwrap(env, argv[0]);
  if (!c) return NULL;
  char *data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[1], (void **)&data, &len));
  int32_t start, end;
  CHECK(napi_get_value_int32(env, argv[2], &start));
  CHECK(napi_get_value_int32(env, argv[3], &end));
  if (start < 0 || end < start || (size_t)end > len) {
    napi_throw_range_error(env, NULL, "write range out of bounds");
    return NULL;
  }
  int rc = 1;
  const char *p = data + start;
  size_t n = (size_t)(end - start);
  if (c->closing || c->end_after_drain) {
    rc = -EPIPE;
  } else {
    if (c->q_len == 0) {
      while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          rc = -errno;
          n = 0;
          break;
        }
        p += w;
        n -= (size_t)w;
      }
    }
    if (n > 0) {
      if (c->q_off > 0 && c->q_off + c->q_len + n > c->q_cap) {
        memmove(c->q, c->q + c->q_off, c->q_len);
        c->q_off = 0;
      }
      if (c->q_off + c->q_len + n > c->q_cap) {
        size_t cap = c->q_cap ? c->q_cap : 16384;
        while (cap < c->q_len + n) cap *= 2;
        char *nq = realloc(c->q, cap);
        if (!nq) {
          napi_throw_error(env, NULL, "out of memory");
          return NULL;
        }
        c->q = nq;
        c->q_cap = cap;
      }
      memcpy(c->q + c->q_off + c->q_len, p, n);
      c->q_len += n;
      update_poll(c);
      rc = 0;
    }
  }
  napi_value out;
  CHECK(napi_create_int32(env, rc, &out));
  return out;
}

/* Bytes queued in user space (not yet taken by the kernel). */
static napi_value js_queued(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn *c = unwrap(env, argv[0]);
  if (!c) return NULL;
  napi_value out;
  CHECK(napi_create_double(env, (double)c->q_len, &out));
  return out;
}

/* end(conn): shut down the write side once the queue has drained (reading is left as it is). */
static napi_value js_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn *c = unwrap(env, argv[0]);
  if (!c || c->closing || c->end_after_drain) return NULL;
  c->end_after_drain = 1;
  if (c->q_len == 0) shutdown(c->fd, SHUT_WR);
  return NULL;
}

/* destroy(conn): close now, dropping anything queued. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn *c = unwrap(env, argv[0]);
  if (!c || c->closing) return NULL;
  c->want_read = 0;
  do_close(c);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value buf;
  void *data;
  CHECK(napi_create_buffer(env, READ_SIZE, &data, &buf));
  read_buf = data;
  CHECK(napi_create_reference(env, buf, 1, &read_buf_ref));
  napi_property_descriptor props[] = {
    {"readBuffer", NULL, NULL, NULL, NULL, buf, napi_enumerable, NULL},
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setReading", NULL, js_set_reading, NULL, NULL, NULL, napi_enumerable, NULL},
    {"write", NULL, js_write, NULL, NULL, NULL, napi_enumerable, NULL},
    {"queued", NULL, js_queued, NULL, NULL, NULL, napi_enumerable, NULL},
    {"end", NULL, js_end, NULL, NULL, NULL, napi_enumerable, NULL},
    {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
