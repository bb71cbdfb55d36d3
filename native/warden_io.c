/*
 * Warden's native socket I/O for the relay hot path (see src/proxy/native-io.ts).
 *
 * Node's net.Socket costs several microseconds of JavaScript per read and per
 * write (stream state, write requests, deferred callbacks), and every call
 * from C++ into JavaScript costs a callback scope of its own. A relay that
 * moves one small message each way per statement spends most of its CPU there.
 *
 * This addon owns connected sockets (duplicates of the descriptors Node held)
 * and polls them with uv_poll on Node's own event loop: no thread, no
 * hand-off. In the poll phase it only reads: each readable socket's bytes are
 * appended to one arena, and an event (socket id, kind, start, end) to one
 * table, both shared with JavaScript. In the check phase of the same loop
 * iteration it calls JavaScript once for everything that happened, however
 * many sockets were ready. Writes are synchronous send() calls; what the
 * kernel does not take is queued here and sent when the socket is writable.
 *
 * Contract: the arena's bytes are valid only during the batch call.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
#define ARENA_SIZE (4 * READ_SIZE)
#define MAX_EVENTS 512

/* Event kinds, as JavaScript reads them (native-io.ts keeps the same numbers). */
enum { EV_READ = 1, EV_DRAIN = 2, EV_EOF = 3, EV_ERROR = 4 };

typedef struct conn {
  uv_poll_t poll;
  int32_t id;
  int fd;
  int want_read;
  int events;       /* events the poll is started with (0: stopped) */
  int closing;      /* uv_close called */
  int end_after_drain;
  char *q;          /* bytes the kernel has not taken yet */
  size_t q_off, q_len, q_cap;
} conn;

/* Open connections by the id JavaScript gave them (JavaScript reuses an id only once its socket is gone). */
static conn **table;
static uint32_t table_size;

static napi_env the_env;
static char *arena;
static size_t arena_used;
static int32_t *events;
static uint32_t event_count;
static napi_ref batch_fn;
static napi_ref batch_recv;
static napi_async_context batch_ctx;
static uv_check_t check_handle;

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)
/* The first n arguments of a JavaScript call, in argv (missing ones are undefined). */
#define ARGS(n) \
  size_t argc = (n); \
  napi_value argv[(n)]; \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(conn *c) {
  if (c->closing) return;
  int ev = (c->want_read ? UV_READABLE : 0) | (c->q_len > 0 ? UV_WRITABLE : 0);
  if (ev == c->events) return;
  c->events = ev;
  if (ev == 0) uv_poll_stop(&c->poll);
  else uv_poll_start(&c->poll, ev, on_poll);
}

static void on_close(uv_handle_t *h) {
  conn *c = (conn *)h->data;
  close(c->fd);
  free(c->q);
  free(c);
}

static void do_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  if ((uint32_t)c->id < table_size && table[c->id] == c) table[c->id] = NULL;
  uv_close((uv_handle_t *)&c->poll, on_close);
}

/* Hand every event collected so far to JavaScript in one call. */
static void deliver(void) {
  if (event_count == 0) return;
  napi_env env = the_env;
  uint32_t n = event_count;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, argv[1], result;
  napi_get_reference_value(env, batch_fn, &fn);
  napi_get_reference_value(env, batch_recv, &recv);
  napi_create_uint32(env, n, &argv[0]);
  napi_status st = napi_make_callback(env, batch_ctx, recv, fn, 1, argv, &result);
  /* Whatever JavaScript did with them, these events are done: the arena is reused. */
  event_count = 0;
  arena_used = 0;
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void add_event(conn *c, int32_t kind, int32_t a, int32_t b) {
  if (event_count == MAX_EVENTS) deliver();
  int32_t *e = events + 4 * event_count++;
  e[0] = c->id;
  e[1] = kind;
  e[2] = a;
  e[3] = b;
}

static void on_check(uv_check_t *h) {
  uv_check_stop(h);
  deliver();
}

/* Deliver in this loop iteration's check phase. */
static void want_check(void) {
  if (!uv_is_active((uv_handle_t *)&check_handle)) uv_check_start(&check_handle, on_check);
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
      add_event(c, EV_ERROR, e, 0);
      return;
    }
    c->q_off += (size_t)n;
    c->q_len -= (size_t)n;
  }
  c->q_off = 0;
  update_poll(c);
  if (c->end_after_drain) shutdown(c->fd, SHUT_WR);
  add_event(c, EV_DRAIN, 0, 0);
}

static void on_poll(uv_poll_t *h, int status, int ev) {
  conn *c = (conn *)h->data;
  if (c->closing) return;
  if (status < 0) {
    /* libuv stops the handle and says UV_EBADF for any POLLERR: the socket knows the real error. */
    c->events = 0;
    c->want_read = 0;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = status == UV_EBADF ? ECONNRESET : -status;
    add_event(c, EV_ERROR, err, 0);
    want_check();
    return;
  }
  if ((ev & UV_WRITABLE) && c->q_len > 0) flush_queue(c);
  if ((ev & UV_READABLE) && c->want_read) {
    if (ARENA_SIZE - arena_used < READ_SIZE) deliver();
    for (;;) {
      ssize_t n = recv(c->fd, arena + arena_used, READ_SIZE, 0);
      if (n > 0) {
        add_event(c, EV_READ, (int32_t)arena_used, (int32_t)(arena_used + (size_t)n));
        arena_used += (size_t)n;
      } else if (n == 0) {
        c->want_read = 0;
        update_poll(c);
        add_event(c, EV_EOF, 0, 0);
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        int e = errno;
        c->want_read = 0;
        update_poll(c);
        add_event(c, EV_ERROR, e, 0);
      }
      break;
    }
  }
  if (event_count > 0) want_check();
}

/* The open connection with this id, or NULL (closed, or never opened). */
static conn *lookup(napi_env env, napi_value v) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || (uint32_t)id >= table_size) return NULL;
  return table[id];
}

/* init(onBatch, resource): the one JavaScript function every batch goes to. */
static napi_value js_init(napi_env env, napi_callback_info info) {
  ARGS(2);
  if (the_env != NULL) {
    napi_throw_error(env, NULL, "already initialized");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_check_init(loop, &check_handle) != 0) {
    napi_throw_error(env, NULL, "uv_check_init failed");
    return NULL;
  }
  uv_unref((uv_handle_t *)&check_handle);
  CHECK(napi_create_reference(env, argv[0], 1, &batch_fn));
  CHECK(napi_create_reference(env, argv[1], 1, &batch_recv));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "WardenNativeSocketBatch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, argv[1], name, &batch_ctx));
  the_env = env;
  return NULL;
}

/* open(fd, id): take over a duplicate of fd (the caller closes its own) under id, which must be free. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  if (env != the_env) {
    napi_throw_error(env, NULL, "native socket I/O is not initialized for this thread");
    return NULL;
  }
  int32_t fd, id;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &id));
  if (id < 0 || id > (1 << 24) || ((uint32_t)id < table_size && table[id] != NULL)) {
    napi_throw_range_error(env, NULL, "socket id in use or out of range");
    return NULL;
  }
  if ((uint32_t)id >= table_size) {
    uint32_t size = table_size ? table_size : 64;
    while (size <= (uint32_t)id) size *= 2;
    conn **t = realloc(table, size * sizeof(conn *));
    if (!t) {
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    memset(t + table_size, 0, (size - table_size) * sizeof(conn *));
    table = t;
    table_size = size;
  }
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
  c->fd = nfd;
  c->id = id;
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init_socket(loop, &c->poll, nfd) != 0) {
    close(nfd);
    free(c);
    napi_throw_error(env, NULL, "uv_poll_init_socket failed");
    return NULL;
  }
  c->poll.data = c;
  table[id] = c;
  return NULL;
}

static napi_value js_set_reading(napi_env env, napi_callback_info info) {
  ARGS(2);
  conn *c = lookup(env, argv[0]);
  if (!c) return NULL;
  bool on;
  CHECK(napi_get_value_bool(env, argv[1], &on));
  if (c->closing) return NULL;
  c->want_read = on ? 1 : 0;
  update_poll(c);
  return NULL;
}

/* Send n bytes at p: 1 all sent, 0 the rest queued (a drain event follows), -errno on error. */
static int do_write(conn *c, const char *p, size_t n);

/* Write bytes [start, end) of data (len bytes long) and give JavaScript the result. */
static napi_value write_range(napi_env env, conn *c, const char *data, size_t len, int32_t start, int32_t end) {
  if (start < 0 || end < start || (size_t)end > len) {
    napi_throw_range_error(env, NULL, "write range out of bounds");
    return NULL;
  }
  int rc = c ? do_write(c, data + start, (size_t)(end - start)) : -EPIPE;
  if (rc == -ENOMEM) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_int32(env, rc, &out));
  return out;
}

/* write(id, buffer, start, end) -> see do_write. */
static napi_value js_write(napi_env env, napi_callback_info info) {
  ARGS(4);
  char *data;
  size_t len;
  int32_t start, end;
  CHECK(napi_get_buffer_info(env, argv[1], (void **)&data, &len));
  CHECK(napi_get_value_int32(env, argv[2], &start));
  CHECK(napi_get_value_int32(env, argv[3], &end));
  return write_range(env, lookup(env, argv[0]), data, len, start, end);
}

/* writeArena(id, start, end): write bytes of the current batch's arena (the relay's common case). */
static napi_value js_write_arena(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t start, end;
  CHECK(napi_get_value_int32(env, argv[1], &start));
  CHECK(napi_get_value_int32(env, argv[2], &end));
  return write_range(env, lookup(env, argv[0]), arena, ARENA_SIZE, start, end);
}

static int do_write(conn *c, const char *p, size_t n) {
  int rc = 1;
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
        if (!nq) return -ENOMEM;
        c->q = nq;
        c->q_cap = cap;
      }
      memcpy(c->q + c->q_off + c->q_len, p, n);
      c->q_len += n;
      update_poll(c);
      rc = 0;
    }
  }
  return rc;
}

/* Bytes queued in user space (not yet taken by the kernel). */
static napi_value js_queued(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn *c = lookup(env, argv[0]);
  napi_value out;
  CHECK(napi_create_double(env, c ? (double)c->q_len : 0, &out));
  return out;
}

/* end(conn): shut down the write side once the queue has drained (reading is left as it is). */
static napi_value js_end(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn *c = lookup(env, argv[0]);
  if (!c || c->closing || c->end_after_drain) return NULL;
  c->end_after_drain = 1;
  if (c->q_len == 0) shutdown(c->fd, SHUT_WR);
  return NULL;
}

/* destroy(conn): close now, dropping anything queued. Events already collected for it are still delivered. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn *c = lookup(env, argv[0]);
  if (!c || c->closing) return NULL;
  c->want_read = 0;
  do_close(c);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value arena_buf, events_ab, events_arr;
  void *data;
  if (arena == NULL) {
    CHECK(napi_create_buffer(env, ARENA_SIZE, &data, &arena_buf));
    arena = data;
    napi_ref keep;
    CHECK(napi_create_reference(env, arena_buf, 1, &keep));
    CHECK(napi_create_arraybuffer(env, MAX_EVENTS * 4 * sizeof(int32_t), &data, &events_ab));
    events = data;
    CHECK(napi_create_reference(env, events_ab, 1, &keep));
    CHECK(napi_create_typedarray(env, napi_int32_array, MAX_EVENTS * 4, events_ab, 0, &events_arr));
  } else {
    /* A second instance (a worker thread) gets no shared memory: open() refuses it. */
    CHECK(napi_create_buffer(env, 0, &data, &arena_buf));
    CHECK(napi_create_arraybuffer(env, 0, &data, &events_ab));
    CHECK(napi_create_typedarray(env, napi_int32_array, 0, events_ab, 0, &events_arr));
  }
  napi_value c_read, c_drain, c_eof, c_error;
  CHECK(napi_create_int32(env, EV_READ, &c_read));
  CHECK(napi_create_int32(env, EV_DRAIN, &c_drain));
  CHECK(napi_create_int32(env, EV_EOF, &c_eof));
  CHECK(napi_create_int32(env, EV_ERROR, &c_error));
  napi_property_descriptor props[] = {
    {"arena", NULL, NULL, NULL, NULL, arena_buf, napi_enumerable, NULL},
    {"events", NULL, NULL, NULL, NULL, events_arr, napi_enumerable, NULL},
    {"EV_READ", NULL, NULL, NULL, NULL, c_read, napi_enumerable, NULL},
    {"EV_DRAIN", NULL, NULL, NULL, NULL, c_drain, napi_enumerable, NULL},
    {"EV_EOF", NULL, NULL, NULL, NULL, c_eof, napi_enumerable, NULL},
    {"EV_ERROR", NULL, NULL, NULL, NULL, c_error, napi_enumerable, NULL},
    {"init", NULL, js_init, NULL, NULL, NULL, napi_enumerable, NULL},
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setReading", NULL, js_set_reading, NULL, NULL, NULL, napi_enumerable, NULL},
    {"write", NULL, js_write, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeArena", NULL, js_write_arena, NULL, NULL, NULL, napi_enumerable, NULL},
    {"queued", NULL, js_queued, NULL, NULL, NULL, napi_enumerable, NULL},
    {"end", NULL, js_end, NULL, NULL, NULL, napi_enumerable, NULL},
    {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
