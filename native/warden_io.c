/*
 * Warden's native socket I/O for the relay hot path (see src/proxy/transport/native-io.ts).
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
 * What keeps one session's bytes away from another (docs/security.md):
 * - JavaScript is called only from the check phase, never while the poll phase
 *   is collecting. When the event table or the arena has no room, a socket is
 *   simply not read now: uv_poll is level-triggered on Linux, so it is
 *   reported again in the next loop iteration, after this one's events are
 *   delivered. The arena is reset only after the batch call returns, and no
 *   event ever names bytes of an earlier batch.
 * - destroy() drops every event still queued for the socket (and any error
 *   waiting for room), whatever the loop phase, so its id can be given to a
 *   new socket at once without the new one receiving the old one's events.
 * - Bytes of the arena can be written only during the batch that delivered
 *   them, and only the part of the arena that batch filled.
 *
 * State is per N-API environment (the main thread and each worker have their
 * own arena, table and sockets), and every entry point refuses calls from a
 * thread other than the one that loaded this instance.
 *
 * Contract: the arena's bytes are valid only during the batch call.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef __linux__
/* MSG_NOSIGNAL, and level-triggered uv_poll (which the full-table case relies on), are what is tested: Linux only. */
#error "warden_io is built and tested on Linux only; elsewhere Warden relays through Node's sockets"
#endif

#define READ_SIZE (64 * 1024)
#define ARENA_SIZE (4 * READ_SIZE)
/* A socket is not read while less than this is left in the arena (it is read next iteration). */
#define MIN_READ (4 * 1024)
#define MAX_EVENTS 512

/* Event kinds, as JavaScript reads them (native-io.ts keeps the same numbers). EV_NONE: dropped. */
enum { EV_NONE = 0, EV_READ = 1, EV_DRAIN = 2, EV_EOF = 3, EV_ERROR = 4 };

typedef struct state state;

typedef struct conn {
  uv_poll_t poll;
  state *st;
  int32_t id;
  int fd;
  int want_read;
  int events;       /* events the poll is started with (0: stopped) */
  int closing;      /* uv_close called */
  int end_after_drain;
  int pending_err;  /* an error waiting for room in the event table (on st->pending) */
  struct conn *next_pending;
  char *q;          /* bytes the kernel has not taken yet */
  size_t q_off, q_len, q_cap;
} conn;

/* Everything of one N-API environment (its instance data). */
struct state {
  napi_env env;
  pthread_t thread;          /* the environment's thread: the only one allowed in */
  uv_loop_t *loop;
  /* Open connections by the id JavaScript gave them (JavaScript reuses an id only once its socket is gone). */
  conn **table;
  uint32_t table_size;
  char *arena;
  size_t arena_used;
  int32_t *events;
  uint32_t event_count;
  int in_batch;              /* JavaScript is handling the current batch: the arena is valid */
  conn *pending;             /* connections with an error to report once the table has room */
  napi_ref arena_ref, events_ref;
  napi_ref batch_fn, batch_recv;
  napi_async_context batch_ctx;
  int started;               /* init() succeeded: batch_* and check_handle are set */
  uv_check_t check_handle;
  uint32_t handles;          /* uv handles not yet closed (connections, check_handle) */
  int env_gone;              /* the instance data finalizer ran: no JavaScript any more */
  int shutting_down;         /* the environment is being torn down: handles are closing */
  napi_async_cleanup_hook_handle cleanup;
};

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)
/*
 * The N-API prologue: the first n arguments in argv (missing ones are
 * undefined), and this environment's state, refused from any other thread.
 */
#define ARGS(n) \
  size_t argc = (n); \
  napi_value argv[(n)]; \
  void *data_; \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, &data_)); \
  state *st = (state *)data_; \
  if (!pthread_equal(pthread_self(), st->thread) || env != st->env) { \
    napi_throw_error(env, "ERR_WARDEN_IO_THREAD", "warden_io: called from a thread that did not load this instance of the addon (each thread must load its own)"); \
    return NULL; \
  }

static void on_poll(uv_poll_t *h, int status, int events);

static void maybe_free_state(state *st) {
  if (!st->env_gone || st->handles > 0) return;
  free(st->table);
  free(st);
}

/* One uv handle fewer; the last one during teardown ends the environment's cleanup hook. */
static void handle_closed(state *st) {
  st->handles--;
  if (st->handles == 0 && st->shutting_down && st->cleanup != NULL) {
    napi_async_cleanup_hook_handle h = st->cleanup;
    st->cleanup = NULL;
    napi_remove_async_cleanup_hook(h);
  }
  maybe_free_state(st);
}

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
  state *st = c->st;
  close(c->fd);
  free(c->q);
  free(c);
  handle_closed(st);
}

static void do_close(conn *c) {
  if (c->closing) return;
  state *st = c->st;
  c->closing = 1;
  if ((uint32_t)c->id < st->table_size && st->table[c->id] == c) st->table[c->id] = NULL;
  /* Nothing collected for this socket reaches JavaScript any more: its id may name a new socket at once. */
  int32_t *e = st->events;
  for (uint32_t i = 0; i < st->event_count; i++, e += 4) {
    if (e[0] == c->id) e[1] = EV_NONE;
  }
  if (c->pending_err != 0) {
    for (conn **p = &st->pending; *p != NULL; p = &(*p)->next_pending) {
      if (*p == c) {
        *p = c->next_pending;
        break;
      }
    }
    c->pending_err = 0;
  }
  uv_close((uv_handle_t *)&c->poll, on_close);
}

/* Hand every event collected so far to JavaScript in one call; then the arena and the table are free again. */
static void deliver(state *st) {
  if (st->event_count == 0) return;
  napi_env env = st->env;
  napi_handle_scope scope;
  if (!st->env_gone && napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value fn, recv, argv[1], result;
    napi_get_reference_value(env, st->batch_fn, &fn);
    napi_get_reference_value(env, st->batch_recv, &recv);
    napi_create_uint32(env, st->event_count, &argv[0]);
    st->in_batch = 1;
    napi_status s = napi_make_callback(env, st->batch_ctx, recv, fn, 1, argv, &result);
    st->in_batch = 0;
    if (s == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
    napi_close_handle_scope(env, scope);
  }
  /* Whatever JavaScript did with them, these events are done: only now is the arena reused. */
  st->event_count = 0;
  st->arena_used = 0;
}

/* Callers make sure there is room (on_poll checks before each step). */
static void add_event(conn *c, int32_t kind, int32_t a, int32_t b) {
  state *st = c->st;
  if (st->event_count >= MAX_EVENTS) napi_fatal_error("warden_io", NAPI_AUTO_LENGTH, "event table overflow", NAPI_AUTO_LENGTH);
  int32_t *e = st->events + 4 * st->event_count++;
  e[0] = c->id;
  e[1] = kind;
  e[2] = a;
  e[3] = b;
}

/* Errors that waited for room, into the (just emptied) table. */
static void take_pending(state *st) {
  while (st->pending != NULL && st->event_count < MAX_EVENTS) {
    conn *c = st->pending;
    st->pending = c->next_pending;
    int err = c->pending_err;
    c->pending_err = 0;
    c->next_pending = NULL;
    add_event(c, EV_ERROR, err, 0);
  }
}

static void on_check(uv_check_t *h) {
  state *st = (state *)h->data;
  uv_check_stop(h);
  do {
    deliver(st);
    take_pending(st);
  } while (st->event_count > 0 && !st->shutting_down);
}

/* Deliver in this loop iteration's check phase. */
static void want_check(state *st) {
  if (!uv_is_active((uv_handle_t *)&st->check_handle)) uv_check_start(&st->check_handle, on_check);
}

/* Adds at most one event (drain or error). */
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
  state *st = c->st;
  if (c->closing || st->shutting_down) return;
  if (status < 0) {
    /* libuv stops the handle and says UV_EBADF for any POLLERR: the socket knows the real error. */
    c->events = 0;
    c->want_read = 0;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = status == UV_EBADF ? ECONNRESET : -status;
    if (st->event_count < MAX_EVENTS) {
      add_event(c, EV_ERROR, err, 0);
    } else if (c->pending_err == 0) {
      /* The handle is stopped, so this is not reported again: keep it for the check phase. */
      c->pending_err = err;
      c->next_pending = st->pending;
      st->pending = c;
    }
    want_check(st);
    return;
  }
  /*
   * Each step adds at most one event, and runs only when the table has room
   * for it (and a read only when the arena has room for it). A step skipped
   * now happens in the next loop iteration: the poll is level-triggered.
   */
  if ((ev & UV_WRITABLE) && c->q_len > 0 && st->event_count < MAX_EVENTS) flush_queue(c);
  if ((ev & UV_READABLE) && c->want_read && !c->closing && st->event_count < MAX_EVENTS && ARENA_SIZE - st->arena_used >= MIN_READ) {
    size_t room = ARENA_SIZE - st->arena_used;
    for (;;) {
      ssize_t n = recv(c->fd, st->arena + st->arena_used, room < READ_SIZE ? room : READ_SIZE, 0);
      if (n > 0) {
        int32_t start = (int32_t)st->arena_used;
        st->arena_used += (size_t)n;
        add_event(c, EV_READ, start, (int32_t)st->arena_used);
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
  if (st->event_count > 0) want_check(st);
}

/* The open connection with this id, or NULL (closed, or never opened). */
static conn *lookup(state *st, napi_env env, napi_value v) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || (uint32_t)id >= st->table_size) return NULL;
  return st->table[id];
}

/* init(onBatch, resource): the one JavaScript function every batch of this environment goes to. */
static napi_value js_init(napi_env env, napi_callback_info info) {
  ARGS(2);
  if (st->started || st->shutting_down) {
    napi_throw_error(env, NULL, "already initialized");
    return NULL;
  }
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[0], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, NULL, "init(onBatch, resource): onBatch must be a function");
    return NULL;
  }
  if (uv_check_init(st->loop, &st->check_handle) != 0) {
    napi_throw_error(env, NULL, "uv_check_init failed");
    return NULL;
  }
  st->check_handle.data = st;
  st->handles++;
  uv_unref((uv_handle_t *)&st->check_handle);
  CHECK(napi_create_reference(env, argv[0], 1, &st->batch_fn));
  CHECK(napi_create_reference(env, argv[1], 1, &st->batch_recv));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "WardenNativeSocketBatch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, argv[1], name, &st->batch_ctx));
  st->started = 1;
  return NULL;
}

/* open(fd, id): take over a duplicate of fd (the caller closes its own) under id, which must be free. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  if (!st->started || st->shutting_down) {
    napi_throw_error(env, NULL, "native socket I/O is not initialized in this environment (call init first)");
    return NULL;
  }
  int32_t fd, id;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &id));
  if (id < 0 || id > (1 << 24) || ((uint32_t)id < st->table_size && st->table[id] != NULL)) {
    napi_throw_range_error(env, NULL, "socket id in use or out of range");
    return NULL;
  }
  if ((uint32_t)id >= st->table_size) {
    uint32_t size = st->table_size ? st->table_size : 64;
    while (size <= (uint32_t)id) size *= 2;
    conn **t = realloc(st->table, size * sizeof(conn *));
    if (!t) {
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    memset(t + st->table_size, 0, (size - st->table_size) * sizeof(conn *));
    st->table = t;
    st->table_size = size;
  }
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  int fl = fcntl(nfd, F_GETFL);
  if (fl < 0 || fcntl(nfd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(nfd);
    napi_throw_error(env, NULL, strerror(e));
    return NULL;
  }
  conn *c = calloc(1, sizeof(conn));
  if (!c) {
    close(nfd);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  c->st = st;
  c->fd = nfd;
  c->id = id;
  if (uv_poll_init_socket(st->loop, &c->poll, nfd) != 0) {
    close(nfd);
    free(c);
    napi_throw_error(env, NULL, "uv_poll_init_socket failed");
    return NULL;
  }
  c->poll.data = c;
  st->handles++;
  st->table[id] = c;
  return NULL;
}

static napi_value js_set_reading(napi_env env, napi_callback_info info) {
  ARGS(2);
  conn *c = lookup(st, env, argv[0]);
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

/*
 * Write bytes [start, end) of data (len bytes long) and give JavaScript the
 * result. Bytes in the arena are valid only in the batch that filled them:
 * outside it (or past what it filled) they may be another socket's, so such a
 * write fails with EFAULT and nothing is sent.
 */
static napi_value write_range(napi_env env, state *st, conn *c, const char *data, size_t len, int32_t start, int32_t end) {
  if (start < 0 || end < start || (size_t)end > len) {
    napi_throw_range_error(env, NULL, "write range out of bounds");
    return NULL;
  }
  const char *p = data + start;
  size_t n = (size_t)(end - start);
  int rc;
  if (n > 0 && p < st->arena + ARENA_SIZE && p + n > st->arena && (!st->in_batch || p < st->arena || p + n > st->arena + st->arena_used)) rc = -EFAULT;
  else rc = c ? do_write(c, p, n) : -EPIPE;
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
  return write_range(env, st, lookup(st, env, argv[0]), data, len, start, end);
}

/* writeArena(id, start, end): write bytes of the current batch's arena (the relay's common case). */
static napi_value js_write_arena(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t start, end;
  CHECK(napi_get_value_int32(env, argv[1], &start));
  CHECK(napi_get_value_int32(env, argv[2], &end));
  return write_range(env, st, lookup(st, env, argv[0]), st->arena, ARENA_SIZE, start, end);
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
  conn *c = lookup(st, env, argv[0]);
  napi_value out;
  CHECK(napi_create_double(env, c ? (double)c->q_len : 0, &out));
  return out;
}

/* end(conn): shut down the write side once the queue has drained (reading is left as it is). */
static napi_value js_end(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn *c = lookup(st, env, argv[0]);
  if (!c || c->closing || c->end_after_drain) return NULL;
  c->end_after_drain = 1;
  if (c->q_len == 0) shutdown(c->fd, SHUT_WR);
  return NULL;
}

/*
 * destroy(conn): close now, dropping anything queued to send and every event
 * collected for it that JavaScript has not seen yet; its id is free at once.
 */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  ARGS(1);
  conn *c = lookup(st, env, argv[0]);
  if (!c || c->closing) return NULL;
  c->want_read = 0;
  do_close(c);
  return NULL;
}

static void on_check_closed(uv_handle_t *h) {
  handle_closed((state *)h->data);
}

/* The environment is going away (process exit, worker end): close every handle; the hook ends when they are closed. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  state *st = (state *)arg;
  st->shutting_down = 1;
  st->cleanup = handle;
  st->pending = NULL;
  st->event_count = 0;
  for (uint32_t i = 0; i < st->table_size; i++) {
    if (st->table[i] != NULL) do_close(st->table[i]);
  }
  if (st->started) uv_close((uv_handle_t *)&st->check_handle, on_check_closed);
  if (st->handles == 0) {
    st->cleanup = NULL;
    napi_remove_async_cleanup_hook(handle);
  }
}

static void on_env_gone(napi_env env, void *data, void *hint) {
  state *st = (state *)data;
  st->env_gone = 1;
  maybe_free_state(st);
}

static napi_value init(napi_env env, napi_value exports) {
  state *st = NULL;
  CHECK(napi_get_instance_data(env, (void **)&st));
  napi_value arena_buf, events_ab, events_arr;
  if (st == NULL) {
    st = calloc(1, sizeof(state));
    if (!st) {
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    st->env = env;
    st->thread = pthread_self();
    if (napi_get_uv_event_loop(env, &st->loop) != napi_ok || napi_set_instance_data(env, st, on_env_gone, NULL) != napi_ok) {
      free(st);
      napi_throw_error(env, NULL, "warden_io: could not set up its per-environment state");
      return NULL;
    }
    /* From here on st belongs to the environment (freed by on_env_gone once every handle is closed). */
    CHECK(napi_add_async_cleanup_hook(env, on_env_cleanup, st, NULL));
    void *data;
    CHECK(napi_create_buffer(env, ARENA_SIZE, &data, &arena_buf));
    st->arena = data;
    CHECK(napi_create_reference(env, arena_buf, 1, &st->arena_ref));
    CHECK(napi_create_arraybuffer(env, MAX_EVENTS * 4 * sizeof(int32_t), &data, &events_ab));
    st->events = data;
    CHECK(napi_create_reference(env, events_ab, 1, &st->events_ref));
  } else {
    /* Loaded again in the same environment: the same state, the same memory. */
    CHECK(napi_get_reference_value(env, st->arena_ref, &arena_buf));
    CHECK(napi_get_reference_value(env, st->events_ref, &events_ab));
  }
  CHECK(napi_create_typedarray(env, napi_int32_array, MAX_EVENTS * 4, events_ab, 0, &events_arr));
  napi_value c_none, c_read, c_drain, c_eof, c_error;
  CHECK(napi_create_int32(env, EV_NONE, &c_none));
  CHECK(napi_create_int32(env, EV_READ, &c_read));
  CHECK(napi_create_int32(env, EV_DRAIN, &c_drain));
  CHECK(napi_create_int32(env, EV_EOF, &c_eof));
  CHECK(napi_create_int32(env, EV_ERROR, &c_error));
  napi_property_descriptor props[] = {
    {"arena", NULL, NULL, NULL, NULL, arena_buf, napi_enumerable, NULL},
    {"events", NULL, NULL, NULL, NULL, events_arr, napi_enumerable, NULL},
    {"EV_NONE", NULL, NULL, NULL, NULL, c_none, napi_enumerable, NULL},
    {"EV_READ", NULL, NULL, NULL, NULL, c_read, napi_enumerable, NULL},
    {"EV_DRAIN", NULL, NULL, NULL, NULL, c_drain, napi_enumerable, NULL},
    {"EV_EOF", NULL, NULL, NULL, NULL, c_eof, napi_enumerable, NULL},
    {"EV_ERROR", NULL, NULL, NULL, NULL, c_error, napi_enumerable, NULL},
    {"init", NULL, js_init, NULL, NULL, NULL, napi_enumerable, st},
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, st},
    {"setReading", NULL, js_set_reading, NULL, NULL, NULL, napi_enumerable, st},
    {"write", NULL, js_write, NULL, NULL, NULL, napi_enumerable, st},
    {"writeArena", NULL, js_write_arena, NULL, NULL, NULL, napi_enumerable, st},
    {"queued", NULL, js_queued, NULL, NULL, NULL, napi_enumerable, st},
    {"end", NULL, js_end, NULL, NULL, NULL, napi_enumerable, st},
    {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_enumerable, st},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
