// An LD_PRELOAD shim for proofs_test.cc. It records, in one process-wide
// order, every fsync/fdatasync the process makes, the first bytes of every
// HTTP request read from a socket and of every HTTP reply written to one,
// and every read or write whose bytes carry a test's marker, so that a test
// can tell "the 200 went out after the fsync of its own message" apart from
// "there was no fsync at all", which no kill -9 test can.
//
// Lines go to the file named by $SP_IO_TRACE_FILE (nothing is recorded
// without it), each appended by one write(2) of the whole line on an
// O_APPEND descriptor, so lines from concurrent threads never mix. They are
// in the file roughly in order; the sequence number is the order:
//   <seq> req <fd> <METHOD>            a request's first bytes were read
//   <seq> reply <fd> <status>          a reply's first bytes are about to be written
//   <seq> sync <fd> <begin-seq> <path> an fsync/fdatasync that began at
//                                      begin-seq returned at seq
//   <seq> read <fd> <marker> <path>    bytes carrying <marker> were read
//   <seq> wrote <fd> <marker> <path>   bytes carrying <marker> were written
//                                      (write, pwrite, pwrite64), and the
//                                      call had returned at seq
// A request is taken at the read that returns its request line, so a sync
// whose begin-seq is greater than a request's seq started after that request
// had arrived, and one whose seq is below a reply's seq had finished before
// the reply was written. A marker is $SP_IO_TRACE_MARK (a prefix such as
// "durable-") and the letters, digits, '-' and '_' after it: a test that
// puts a unique marker in each message's text can follow that message from
// the request that read it to the write that put it in the queue's WAL, and
// require the fsync that began after that write.
//
// Built without sanitizers: under ASan the test sets
// verify_asan_link_order=0, since a preloaded library comes before the ASan
// runtime in the initial library list.
#define _GNU_SOURCE
// pwrite and pwrite64 are both defined below: neither may be renamed to the other.
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_ulong next_seq;
static int trace_fd = -1;
static char marker_prefix[32];
static size_t marker_prefix_size;

__attribute__((constructor)) static void open_trace(void) {
  const char* path = getenv("SP_IO_TRACE_FILE");
  if (path == NULL || *path == '\0') return;
  const char* prefix = getenv("SP_IO_TRACE_MARK");
  if (prefix != NULL && strlen(prefix) < sizeof(marker_prefix)) {
    marker_prefix_size = strlen(prefix);
    memcpy(marker_prefix, prefix, marker_prefix_size);
  }
  // Raw system calls: the shim's own I/O must never be traced or reach a
  // sanitizer's interceptor.
  trace_fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                          0644);
}

static unsigned long take_seq(void) { return atomic_fetch_add(&next_seq, 1) + 1; }

static void emit(const char* line, int length) {
  if (trace_fd >= 0 && length > 0) syscall(SYS_write, trace_fd, line, (size_t)length);
}

static int is_socket(int fd) {
  int type = 0;
  socklen_t size = sizeof(type);
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0;
}

// "POST" for "POST /path HTTP/1.1..."; 0 when the bytes do not start with a
// request line's method.
static int request_method(const char* data, size_t size, char method[16]) {
  size_t i = 0;
  while (i < size && i < 15 && data[i] >= 'A' && data[i] <= 'Z') ++i;
  if (i < 3 || i >= size || data[i] != ' ') return 0;
  memcpy(method, data, i);
  method[i] = '\0';
  return 1;
}

static void note_request(int fd, const void* data, ssize_t got) {
  if (trace_fd < 0 || got <= 0) return;
  char method[16];
  if (!request_method((const char*)data, (size_t)got, method) || !is_socket(fd)) return;
  char line[96];
  emit(line, snprintf(line, sizeof(line), "%lu req %d %s\n", take_seq(), fd, method));
}

static void note_reply(int fd, const void* data, size_t size) {
  static const char kPrefix[] = "HTTP/1.1 ";
  const size_t prefix = sizeof(kPrefix) - 1;
  if (trace_fd < 0 || size < prefix + 3 || memcmp(data, kPrefix, prefix) != 0 || !is_socket(fd))
    return;
  const char* status = (const char*)data + prefix;
  char line[96];
  emit(line, snprintf(line, sizeof(line), "%lu reply %d %.3s\n", take_seq(), fd, status));
}

// What `fd` is open on, as /proc names it: a path, "socket:[inode]".
static void fd_path(int fd, char path[512]) {
  char link[64];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  const long n = syscall(SYS_readlinkat, AT_FDCWD, link, path, 511);
  path[n > 0 ? n : 0] = '\0';
}

static void note_sync(int fd, unsigned long began) {
  char path[512];
  fd_path(fd, path);
  char line[640];
  emit(line, snprintf(line, sizeof(line), "%lu sync %d %lu %s\n", take_seq(), fd, began, path));
}

static int is_marker_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

// One line per marker in the `size` bytes at `data` that were read or
// written (`kind`) on `fd`.
static void note_markers(const char* kind, int fd, const void* data, ssize_t size) {
  if (trace_fd < 0 || marker_prefix_size == 0 || size <= 0) return;
  const char* at = (const char*)data;
  const char* const end = at + size;
  char path[512];
  path[0] = '\0';
  while ((at = memmem(at, (size_t)(end - at), marker_prefix, marker_prefix_size)) != NULL) {
    const char* after = at + marker_prefix_size;
    while (after < end && after - at < 96 && is_marker_char(*after)) ++after;
    if (path[0] == '\0') fd_path(fd, path);
    char line[720];
    emit(line, snprintf(line, sizeof(line), "%lu %s %d %.*s %s\n", take_seq(), kind, fd,
                        (int)(after - at), at, path));
    at = after;
  }
}

// The next definition of `name` after this library: libc's, or a sanitizer's
// interceptor in front of it.
static void* next_symbol(void** slot, const char* name) {
  void* found = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (found == NULL) {
    found = dlsym(RTLD_NEXT, name);
    __atomic_store_n(slot, found, __ATOMIC_RELEASE);
  }
  return found;
}

#define REAL(name)          \
  static void* slot_##name; \
  __typeof__(name)* const real_##name = (__typeof__(name)*)next_symbol(&slot_##name, #name)

int fsync(int fd) {
  REAL(fsync);
  const unsigned long began = take_seq();
  const int rc = real_fsync(fd);
  note_sync(fd, began);
  return rc;
}

int fdatasync(int fd) {
  REAL(fdatasync);
  const unsigned long began = take_seq();
  const int rc = real_fdatasync(fd);
  note_sync(fd, began);
  return rc;
}

ssize_t send(int fd, const void* data, size_t size, int flags) {
  REAL(send);
  note_reply(fd, data, size);
  return real_send(fd, data, size, flags);
}

ssize_t sendto(int fd, const void* data, size_t size, int flags, const struct sockaddr* to,
               socklen_t to_size) {
  REAL(sendto);
  note_reply(fd, data, size);
  return real_sendto(fd, data, size, flags, to, to_size);
}

ssize_t sendmsg(int fd, const struct msghdr* message, int flags) {
  REAL(sendmsg);
  if (message != NULL && message->msg_iovlen > 0)
    note_reply(fd, message->msg_iov[0].iov_base, message->msg_iov[0].iov_len);
  return real_sendmsg(fd, message, flags);
}

ssize_t write(int fd, const void* data, size_t size) {
  REAL(write);
  note_reply(fd, data, size);
  const ssize_t wrote = real_write(fd, data, size);
  note_markers("wrote", fd, data, wrote);
  return wrote;
}

// SQLite writes its WAL with pwrite64 (or pwrite, where it is built so).
ssize_t pwrite(int fd, const void* data, size_t size, off_t offset) {
  REAL(pwrite);
  const ssize_t wrote = real_pwrite(fd, data, size, offset);
  note_markers("wrote", fd, data, wrote);
  return wrote;
}

ssize_t pwrite64(int fd, const void* data, size_t size, off64_t offset) {
  REAL(pwrite64);
  const ssize_t wrote = real_pwrite64(fd, data, size, offset);
  note_markers("wrote", fd, data, wrote);
  return wrote;
}

ssize_t writev(int fd, const struct iovec* parts, int count) {
  REAL(writev);
  if (count > 0) note_reply(fd, parts[0].iov_base, parts[0].iov_len);
  return real_writev(fd, parts, count);
}

ssize_t recv(int fd, void* data, size_t size, int flags) {
  REAL(recv);
  const ssize_t got = real_recv(fd, data, size, flags);
  if (!(flags & MSG_PEEK)) {
    note_request(fd, data, got);
    note_markers("read", fd, data, got);
  }
  return got;
}

ssize_t recvfrom(int fd, void* data, size_t size, int flags, struct sockaddr* from,
                 socklen_t* from_size) {
  REAL(recvfrom);
  const ssize_t got = real_recvfrom(fd, data, size, flags, from, from_size);
  if (!(flags & MSG_PEEK)) {
    note_request(fd, data, got);
    note_markers("read", fd, data, got);
  }
  return got;
}

ssize_t recvmsg(int fd, struct msghdr* message, int flags) {
  REAL(recvmsg);
  const ssize_t got = real_recvmsg(fd, message, flags);
  if (!(flags & MSG_PEEK) && got > 0 && message->msg_iovlen > 0) {
    const size_t first = message->msg_iov[0].iov_len;
    const ssize_t in_first = got < (ssize_t)first ? got : (ssize_t)first;
    note_request(fd, message->msg_iov[0].iov_base, in_first);
    note_markers("read", fd, message->msg_iov[0].iov_base, in_first);
  }
  return got;
}

ssize_t read(int fd, void* data, size_t size) {
  REAL(read);
  const ssize_t got = real_read(fd, data, size);
  note_request(fd, data, got);
  note_markers("read", fd, data, got);
  return got;
}

ssize_t readv(int fd, const struct iovec* parts, int count) {
  REAL(readv);
  const ssize_t got = real_readv(fd, parts, count);
  if (got > 0 && count > 0) {
    const size_t first = parts[0].iov_len;
    const ssize_t in_first = got < (ssize_t)first ? got : (ssize_t)first;
    note_request(fd, parts[0].iov_base, in_first);
    note_markers("read", fd, parts[0].iov_base, in_first);
  }
  return got;
}
