// Small N-API addon: what Node's fs lacks for sparse files. lseek(SEEK_DATA/SEEK_HOLE)
// to find holes, fallocate for preallocation and hole punching.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, err == ENXIO ? "ENXIO" : err == EOPNOTSUPP ? "EOPNOTSUPP" : err == ENOSPC ? "ENOSPC" : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errnum;
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, int64_t *out) {
  napi_value argv[4];
  size_t argc = 4;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -1;
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_int64(env, argv[i], &out[i]) != napi_ok) return -1;
  }
  return 0;
}

// seek(fd, offset, whence: 0 = data, 1 = hole) -> offset, or -1 when past the last data (ENXIO).
static napi_value seek(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (get_args(env, info, 3, a) != 0) { napi_throw_type_error(env, NULL, "seek(fd, offset, whence)"); return NULL; }
#if defined(SEEK_DATA) && defined(SEEK_HOLE)
  off_t r = lseek((int)a[0], (off_t)a[1], a[2] == 0 ? SEEK_DATA : SEEK_HOLE);
  napi_value out;
  if (r < 0) {
    if (errno == ENXIO) { napi_create_int64(env, -1, &out); return out; }
    return throw_errno(env, "lseek", errno);
  }
  napi_create_int64(env, (int64_t)r, &out);
  return out;
#else
  return throw_errno(env, "lseek", EOPNOTSUPP);
#endif
}

// fallocate(fd, mode: 0 = allocate, 1 = punch hole, offset, length)
static napi_value do_fallocate(napi_env env, napi_callback_info info) {
  int64_t a[4];
  if (get_args(env, info, 4, a) != 0) { napi_throw_type_error(env, NULL, "fallocate(fd, mode, offset, length)"); return NULL; }
#ifdef __linux__
  int mode = a[1] == 1 ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : 0;
  if (fallocate((int)a[0], mode, (off_t)a[2], (off_t)a[3]) != 0) return throw_errno(env, "fallocate", errno);
#else
  return throw_errno(env, "fallocate", EOPNOTSUPP);
#endif
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "seek", NULL, seek, NULL, NULL, NULL, napi_default, NULL },
    { "fallocate", NULL, do_fallocate, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
