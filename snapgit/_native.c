/* snapgit._native: the commit's per-row work on SQLite in C, optional.
 *
 * Every function here has a Python reference in snapgit/native.py, which is what runs when this
 * module is not built, and the tests assert that both give the same objects and the same bytes.
 *
 *   Reader       a read-only SQLite connection opened without SQLite's mutex, whose rows come as
 *                Python's sqlite3 module gives them (int, float, str, bytes, None in a tuple).
 *                Python's module releases the GIL around every step and SQLite, in serialized
 *                mode, takes its mutex on every column: a third of the time of a plain fetch.
 *                Its fetch_blocks gives Batches: rows packed, keyed, cut into the row cache's
 *                blocks and fingerprinted as they are stepped, with their records on demand
 *                through an Encoder (the columns' converters); the reference is the commit's
 *                path for a driver's rows (commit._CachedScan).
 *   pack_digest  msgpack (as msgpack.Packer(use_bin_type=True) packs) and SHA-256 of slices of a
 *                list of rows: the row cache's block fingerprints.
 *   records      msgpack and SHA-256 of each row: a commit's record payloads and ids.
 *   index_entries  a pack index's entries, sorted (128K ids in a few ms; in Python, 90 ms).
 *   sorted_hits  which of many sorted prefixes a pack index holds (a commit's batched probes).
 *   index_sole   the one entry of a pack index with a prefix, read with pread (delta chains).
 *   chain_walk   the links of a delta chain: each looked up in the packs' indexes and read from
 *                the block cache, without Python between them.
 *   ints_fit     whether every value of some integer columns of a batch of rows is within its
 *                range (a restore's checks of what it writes).
 *   patch_make   the patch (git's delta encoding) from a base to an object as long that differs
 *                from it in a few places; patch_apply applies patches (delta chains).
 *   patch_leaf   a tree leaf with some of its record ids replaced, and its new id (a commit
 *                through the change log).
 *   leaf_ids     the record ids a tree leaf holds under some keys, not decoding it (status).
 *   whole_run    a run of objects of a pack block, each stored whole and verified against its
 *                id (a bulk read of records).
 *   sqlite_params  records as the parameters the rows path gives SQLite (None: it does it).
 *   pg_copy_rows records as the tuples of PostgreSQL's binary COPY, checked as a restore checks
 *                them (or None: then the rows path decodes, checks and writes them).
 *
 * The packer knows only exact None, bool, int, float, str, bytes, tuple, list and msgpack's
 * ExtType. For any other value, and for a value msgpack would refuse (an int beyond 64 bits, a
 * str that is not valid UTF-8), it returns None, and the caller runs the Python reference, which
 * gives the result or the error msgpack gives.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static PyObject *NativeError;
static PyObject *ExtTypeClass; /* msgpack.ExtType, set by set_ext_type() */

/* -- a growable byte buffer --------------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    unsigned char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap && buf_reserve(b, n)) return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static inline int put_be(Buf *b, unsigned char head, uint64_t v, int bytes) {
    if (buf_reserve(b, 9)) return -1;
    unsigned char *p = b->p + b->len;
    p[0] = head;
    for (int i = 0; i < bytes; i++) p[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    b->len += 1 + (size_t)bytes;
    return 0;
}

/* -- msgpack, as msgpack-python's Packer(use_bin_type=True) writes it ------------------------ */

enum { PACKED = 0, FAILED = -1, UNSUPPORTED = -2 };

static int pack_i64(Buf *b, long long d);

static int pack_int(Buf *b, PyObject *v) {
    int overflow = 0;
    long long d = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (d == -1 && PyErr_Occurred()) return FAILED;
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return UNSUPPORTED; /* beyond 64 bits: msgpack raises, the reference says so */
        }
        return put_be(b, 0xcf, u, 8);
    }
    if (overflow < 0) return UNSUPPORTED;
    return pack_i64(b, d);
}

static int pack_i64(Buf *b, long long d) {
    if (d < -(1LL << 5)) {
        if (d < -(1LL << 15)) {
            if (d < -(1LL << 31)) return put_be(b, 0xd3, (uint64_t)d, 8);
            return put_be(b, 0xd2, (uint64_t)d, 4);
        }
        if (d < -(1LL << 7)) return put_be(b, 0xd1, (uint64_t)d, 2);
        return put_be(b, 0xd0, (uint64_t)d, 1);
    }
    if (d < (1LL << 7)) {
        unsigned char c = (unsigned char)d;
        return buf_put(b, &c, 1);
    }
    if (d < (1LL << 16)) {
        if (d < (1LL << 8)) return put_be(b, 0xcc, (uint64_t)d, 1);
        return put_be(b, 0xcd, (uint64_t)d, 2);
    }
    if (d < (1LL << 32)) return put_be(b, 0xce, (uint64_t)d, 4);
    return put_be(b, 0xcf, (uint64_t)d, 8);
}

static int pack_len(Buf *b, size_t n, unsigned char fix, size_t fixmax, unsigned char h8, unsigned char h16,
                    unsigned char h32) {
    if (n <= fixmax && fix) {
        unsigned char c = (unsigned char)(fix | n);
        return buf_put(b, &c, 1);
    }
    if (n < 256 && h8) return put_be(b, h8, n, 1);
    if (n < 65536) return put_be(b, h16, n, 2);
    if (n > 0xffffffffULL) return UNSUPPORTED;
    return put_be(b, h32, n, 4);
}

static int pack_value(Buf *b, PyObject *v, int depth);

static int pack_array(Buf *b, PyObject *seq, int depth) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    int rc = pack_len(b, (size_t)n, 0x90, 15, 0, 0xdc, 0xdd);
    for (Py_ssize_t i = 0; rc == PACKED && i < n; i++) rc = pack_value(b, items[i], depth + 1);
    return rc;
}

static int pack_value(Buf *b, PyObject *v, int depth) {
    PyTypeObject *t = Py_TYPE(v);
    if (v == Py_None) return buf_put(b, "\xc0", 1);
    if (v == Py_True) return buf_put(b, "\xc3", 1);
    if (v == Py_False) return buf_put(b, "\xc2", 1);
    if (t == &PyLong_Type) return pack_int(b, v);
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return put_be(b, 0xcb, bits, 8);
    }
    if (t == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s) {
            PyErr_Clear();
            return UNSUPPORTED; /* a lone surrogate: the reference raises msgpack's error */
        }
        int rc = pack_len(b, (size_t)n, 0xa0, 31, 0xd9, 0xda, 0xdb);
        return rc == PACKED ? buf_put(b, s, (size_t)n) : rc;
    }
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        int rc = pack_len(b, (size_t)n, 0, 0, 0xc4, 0xc5, 0xc6);
        return rc == PACKED ? buf_put(b, PyBytes_AS_STRING(v), (size_t)n) : rc;
    }
    if (depth > 32) return UNSUPPORTED;
    if (ExtTypeClass && t == (PyTypeObject *)ExtTypeClass && PyTuple_GET_SIZE(v) == 2) {
        PyObject *code = PyTuple_GET_ITEM(v, 0), *data = PyTuple_GET_ITEM(v, 1);
        if (!PyLong_Check(code) || Py_TYPE(data) != &PyBytes_Type) return UNSUPPORTED; /* codes are an IntEnum */
        long c = PyLong_AsLong(code);
        if (c < -128 || c > 127) {
            PyErr_Clear();
            return UNSUPPORTED;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        int rc;
        switch (n) {
        case 1: rc = buf_put(b, "\xd4", 1); break;
        case 2: rc = buf_put(b, "\xd5", 1); break;
        case 4: rc = buf_put(b, "\xd6", 1); break;
        case 8: rc = buf_put(b, "\xd7", 1); break;
        case 16: rc = buf_put(b, "\xd8", 1); break;
        default: rc = pack_len(b, (size_t)n, 0, 0, 0xc7, 0xc8, 0xc9);
        }
        if (rc != PACKED) return rc;
        unsigned char cc = (unsigned char)(signed char)c;
        if (buf_put(b, &cc, 1)) return FAILED;
        return buf_put(b, PyBytes_AS_STRING(data), (size_t)n);
    }
    if (t == &PyTuple_Type || t == &PyList_Type) return pack_array(b, v, depth);
    return UNSUPPORTED;
}

/* -- SHA-256 ------------------------------------------------------------------------------ */

static EVP_MD *sha256_md;

static int digest(EVP_MD_CTX *ctx, const unsigned char *prefix, size_t plen, const unsigned char *data, size_t n,
                  unsigned char out[32]) {
    unsigned int len = 0;
    if (!EVP_DigestInit_ex(ctx, sha256_md, NULL) || (plen && !EVP_DigestUpdate(ctx, prefix, plen)) ||
        !EVP_DigestUpdate(ctx, data, n) || !EVP_DigestFinal_ex(ctx, out, &len)) {
        PyErr_SetString(NativeError, "SHA-256 failed");
        return -1;
    }
    return 0;
}

/* pack_digest(rows, starts, ends, length) -> [sha256(packb(rows[a:b]))[:length] for a, b] or None */
static PyObject *pack_digest(PyObject *mod, PyObject *args) {
    PyObject *rows, *starts, *ends;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyList_Type, &rows, &PyList_Type, &starts, &PyList_Type, &ends, &length))
        return NULL;
    Py_ssize_t nb = PyList_GET_SIZE(starts), nrows = PyList_GET_SIZE(rows);
    if (PyList_GET_SIZE(ends) != nb || length < 0 || length > 32) {
        PyErr_SetString(PyExc_ValueError, "starts and ends differ in length, or length is not 0-32");
        return NULL;
    }
    PyObject *out = PyList_New(nb);
    if (!out) return NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    Buf b = {0};
    int rc = ctx ? PACKED : FAILED;
    if (!ctx) PyErr_NoMemory();
    for (Py_ssize_t k = 0; rc == PACKED && k < nb; k++) {
        Py_ssize_t lo = PyLong_AsSsize_t(PyList_GET_ITEM(starts, k));
        Py_ssize_t hi = PyLong_AsSsize_t(PyList_GET_ITEM(ends, k));
        if ((lo == -1 || hi == -1) && PyErr_Occurred()) {
            rc = FAILED;
            break;
        }
        if (lo < 0 || hi > nrows || lo > hi) {
            PyErr_SetString(PyExc_IndexError, "a block lies outside the rows");
            rc = FAILED;
            break;
        }
        b.len = 0;
        rc = pack_len(&b, (size_t)(hi - lo), 0x90, 15, 0, 0xdc, 0xdd);
        for (Py_ssize_t r = lo; rc == PACKED && r < hi; r++) rc = pack_value(&b, PyList_GET_ITEM(rows, r), 0);
        if (rc != PACKED) break;
        unsigned char md[32];
        if (digest(ctx, NULL, 0, b.p, b.len, md)) {
            rc = FAILED;
            break;
        }
        PyObject *fp = PyBytes_FromStringAndSize((const char *)md, length);
        if (!fp) {
            rc = FAILED;
            break;
        }
        PyList_SET_ITEM(out, k, fp);
    }
    PyMem_Free(b.p);
    EVP_MD_CTX_free(ctx);
    if (rc == PACKED) return out;
    Py_DECREF(out);
    if (rc == FAILED) return NULL;
    Py_RETURN_NONE;
}

/* ids[i] = sha256(prefix + data), payloads[i] = data: PACKED, or FAILED with an error set */
static int put_record(EVP_MD_CTX *ctx, const unsigned char *prefix, size_t plen, const unsigned char *data,
                      size_t len, PyObject *ids, PyObject *payloads, Py_ssize_t i) {
    unsigned char md[32];
    if (digest(ctx, prefix, plen, data, len, md)) return FAILED;
    PyObject *id = PyBytes_FromStringAndSize((const char *)md, 32);
    PyObject *payload = id ? PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len) : NULL;
    if (!payload) {
        Py_XDECREF(id);
        return FAILED;
    }
    PyList_SET_ITEM(ids, i, id);
    PyList_SET_ITEM(payloads, i, payload);
    return PACKED;
}

/* what a records function returns for ``rc``: (ids, payloads), NULL (an error) or None (the
 * caller runs the Python reference); the lists are taken over */
static PyObject *records_result(int rc, PyObject *ids, PyObject *payloads) {
    PyObject *res = rc == PACKED ? PyTuple_Pack(2, ids, payloads) : NULL;
    Py_XDECREF(ids);
    Py_XDECREF(payloads);
    if (rc == PACKED || rc == FAILED) return res;
    Py_RETURN_NONE;
}

/* records(rows, prefix) -> ([sha256(prefix + packb(row))], [packb(row)]) or None */
static PyObject *records(PyObject *mod, PyObject *args) {
    PyObject *rows;
    const unsigned char *prefix;
    Py_ssize_t plen;
    if (!PyArg_ParseTuple(args, "O!y#", &PyList_Type, &rows, &prefix, &plen)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *ids = PyList_New(n), *payloads = PyList_New(n);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    Buf b = {0};
    int rc = (ids && payloads && ctx) ? PACKED : FAILED;
    if (rc == FAILED && !PyErr_Occurred()) PyErr_NoMemory();
    for (Py_ssize_t i = 0; rc == PACKED && i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        PyTypeObject *t = Py_TYPE(row);
        if (t != &PyTuple_Type && t != &PyList_Type) {
            rc = UNSUPPORTED;
            break;
        }
        b.len = 0;
        rc = pack_array(&b, row, 0);
        if (rc == PACKED) rc = put_record(ctx, prefix, (size_t)plen, b.p, b.len, ids, payloads, i);
    }
    PyMem_Free(b.p);
    EVP_MD_CTX_free(ctx);
    return records_result(rc, ids, payloads);
}

/* -- pack index entries -------------------------------------------------------------------- */

typedef struct {
    uint64_t prefix;
    uint32_t ordinal;
} Entry;

static int entry_cmp(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    if (x->prefix != y->prefix) return x->prefix < y->prefix ? -1 : 1;
    return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

/* index_entries(joined ids) -> (prefixes, ordinals, fanout): the ids' first 8 bytes as
 * big-endian numbers, sorted by (prefix, ordinal), as u64 and u32 little-endian; fanout[i] the
 * number of ids whose first byte is <= i */
static PyObject *index_entries(PyObject *mod, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % 32 || view.len / 32 > UINT32_MAX) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "joined ids: not a whole number of 32-byte ids");
        return NULL;
    }
    size_t n = (size_t)view.len / 32;
    Entry *e = PyMem_Malloc(n ? n * sizeof(Entry) : 1);
    if (!e) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    const unsigned char *ids = view.buf;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        for (int k = 0; k < 8; k++) v = (v << 8) | ids[32 * i + k];
        e[i].prefix = v;
        e[i].ordinal = (uint32_t)i;
    }
    PyBuffer_Release(&view);
    qsort(e, n, sizeof(Entry), entry_cmp);
    PyObject *prefixes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 * n));
    PyObject *ordinals = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * n));
    PyObject *fanout = PyList_New(256);
    if (!prefixes || !ordinals || !fanout) {
        Py_XDECREF(prefixes);
        Py_XDECREF(ordinals);
        Py_XDECREF(fanout);
        PyMem_Free(e);
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(prefixes), *o = (unsigned char *)PyBytes_AS_STRING(ordinals);
    size_t at = 0;
    for (int b = 0; b < 256; b++) {
        while (at < n && (e[at].prefix >> 56) <= (uint64_t)b) at++;
        PyObject *count = PyLong_FromSize_t(at);
        if (!count) {
            Py_DECREF(prefixes);
            Py_DECREF(ordinals);
            Py_DECREF(fanout);
            PyMem_Free(e);
            return NULL;
        }
        PyList_SET_ITEM(fanout, b, count);
    }
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++) p[8 * i + k] = (unsigned char)(e[i].prefix >> (8 * k));
        for (int k = 0; k < 4; k++) o[4 * i + k] = (unsigned char)(e[i].ordinal >> (8 * k));
    }
    PyMem_Free(e);
    PyObject *res = PyTuple_Pack(3, prefixes, ordinals, fanout);
    Py_DECREF(prefixes);
    Py_DECREF(ordinals);
    Py_DECREF(fanout);
    return res;
}

/* The n-th little-endian u64 of p, and the first of p[a..b) not below x (ascending). */
static inline uint64_t le64_at(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | p[8 * n + k];
    return v;
}

static size_t le64_lower_bound(const unsigned char *p, size_t a, size_t b, uint64_t x) {
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (le64_at(p, m) < x) a = m + 1;
        else b = m;
    }
    return a;
}

/* The first of p[a..b) not below x (ascending), found by galloping from a: steps of 1, 2, 4,
 * ... until one lands at or above x, then a binary search within the last step. A batch of
 * sorted look-ups goes a short way each, in memory just read. */
static size_t le64_gallop(const unsigned char *p, size_t a, size_t b, uint64_t x) {
    size_t step = 1, lo = a;
    while (lo + step < b && le64_at(p, lo + step) < x) {
        lo += step;
        step *= 2;
    }
    size_t hi = lo + step < b ? lo + step : b;
    return le64_lower_bound(p, lo, hi, x);
}

/* sorted_hits(prefixes, wanted) -> [w for w in wanted if w in prefixes]: ``prefixes`` a pack
 * index's prefixes (little-endian u64, ascending), ``wanted`` ascending native u64 (an
 * array('Q')). Each is searched for from where the last one was found (le64_gallop): a commit
 * probes for thousands at once, a few entries apart, where a binary search each over the whole
 * index strayed across a megabyte of it (2.2 ms for 15,000 in 131,072; a fifth of that now). */
static PyObject *sorted_hits(PyObject *mod, PyObject *args) {
    Py_buffer pb, wb;
    if (!PyArg_ParseTuple(args, "y*y*", &pb, &wb)) return NULL;
    PyObject *out = NULL;
    if (pb.len % 8 || wb.len % 8) {
        PyErr_SetString(PyExc_ValueError, "sorted_hits: not whole 8-byte numbers");
        goto done;
    }
    size_t np = (size_t)pb.len / 8, nw = (size_t)wb.len / 8, lo = 0;
    const unsigned char *p = pb.buf;
    const uint64_t *w = wb.buf;
    out = PyList_New(0);
    for (size_t i = 0; out && i < nw; i++) {
        uint64_t x = w[i];
        size_t a = le64_gallop(p, lo, np, x);
        lo = a;
        if (a < np && le64_at(p, a) == x) {
            PyObject *n = PyLong_FromUnsignedLongLong(x);
            if (!n || PyList_Append(out, n)) {
                Py_XDECREF(n);
                Py_CLEAR(out);
                break;
            }
            Py_DECREF(n);
        }
    }
done:
    PyBuffer_Release(&pb);
    PyBuffer_Release(&wb);
    return out;
}

/* The ordinal of the one entry of a pack index (open as fd) whose prefix is x, among entries
 * lo..hi-1: -1 none, -2 several, -3 a short read (or no memory for the bucket). */
static long sole_in(int fd, long long prefix_at, long long ordinal_at, long long lo, long long hi, uint64_t x) {
    size_t n = (size_t)(hi - lo);
    if (n == 0) return -1;
    unsigned char stack[8192];
    unsigned char *p = n * 8 <= sizeof stack ? stack : PyMem_Malloc(n * 8);
    if (!p) return -3;
    long result = -3;
    ssize_t got = pread(fd, p, n * 8, (off_t)(prefix_at + 8 * lo));
    if (got == (ssize_t)(n * 8)) {
        size_t a = le64_lower_bound(p, 0, n, x);
        if (a == n || le64_at(p, a) != x) result = -1;
        else if (a + 1 < n && le64_at(p, a + 1) == x) result = -2;
        else {
            unsigned char o[4];
            if (pread(fd, o, 4, (off_t)(ordinal_at + 4 * (lo + (long long)a))) == 4)
                result = (long)((uint32_t)o[0] | (uint32_t)o[1] << 8 | (uint32_t)o[2] << 16 | (uint32_t)o[3] << 24);
        }
    }
    if (p != stack) PyMem_Free(p);
    return result;
}

/* index_sole(fd, prefix_at, ordinal_at, lo, hi, prefix) -> the ordinal of the one entry whose
 * prefix is ``prefix`` among entries lo..hi-1 of a pack index (a fanout bucket), read from the
 * index file ``fd`` with pread: its prefixes start at byte ``prefix_at`` (little-endian u64,
 * ascending), its ordinals at ``ordinal_at`` (little-endian u32). -1: none; -2: several; -3: a
 * read came short (the caller looks again the slow way, which names the problem). */
static PyObject *index_sole(PyObject *mod, PyObject *args) {
    int fd;
    long long prefix_at, ordinal_at, lo, hi;
    unsigned long long x;
    if (!PyArg_ParseTuple(args, "iLLLLK", &fd, &prefix_at, &ordinal_at, &lo, &hi, &x)) return NULL;
    if (lo < 0 || hi < lo || prefix_at < 0 || ordinal_at < 0) {
        PyErr_SetString(PyExc_ValueError, "index_sole: bad bounds");
        return NULL;
    }
    return PyLong_FromLong(sole_in(fd, prefix_at, ordinal_at, lo, hi, x));
}

/* -- chain_walk: the links of a delta chain, from the packs' indexes and the block cache ---- */

static inline uint32_t le32_at(const unsigned char *p, size_t n) {
    return (uint32_t)p[4 * n] | (uint32_t)p[4 * n + 1] << 8 | (uint32_t)p[4 * n + 2] << 16 | (uint32_t)p[4 * n + 3] << 24;
}

/* What one probe of a pack gave: */
enum { PROBE_MISS = 0, PROBE_FOUND = 1, PROBE_SLOW = 2, PROBE_ASK = 3, PROBE_ERROR = 4 };

typedef struct {
    PyObject *block;  /* the cached block's (view, ends) pair, borrowed from the cache */
    Py_ssize_t start, end;
} Found;

/* Look for the object with id ``oid`` in pack ``name``: PROBE_FOUND with its entry's place in a
 * cached block; PROBE_MISS; PROBE_ASK with *ask set to what Python must do first (open the
 * pack's reader or index descriptor, or read a block into the cache); PROBE_SLOW where the
 * careful road must answer (a prefix two objects share, a short read, anything odd). */
static int probe_pack(PyObject *packs, PyObject *blocks, PyObject *name, const unsigned char *oid, Found *f,
                      PyObject **ask) {
    PyObject *pair = PyDict_GetItemWithError(packs, name); /* (IndexReader, PackReader or None) */
    if (pair == NULL) return PyErr_Occurred() ? PROBE_ERROR : PROBE_MISS; /* a pack gone: as Python skips it */
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) return PROBE_SLOW;
    PyObject *idx = PyTuple_GET_ITEM(pair, 0), *rd = PyTuple_GET_ITEM(pair, 1);
    PyObject *layout = PyObject_GetAttrString(idx, "walk_layout"); /* (prefix_at, ordinal_at, fanout) */
    if (layout == NULL) return PROBE_ERROR;
    long long prefix_at, ordinal_at;
    const char *fan;
    Py_ssize_t fan_len;
    if (!PyTuple_Check(layout) || PyTuple_GET_SIZE(layout) != 3 ||
        !PyBytes_Check(PyTuple_GET_ITEM(layout, 2))) {
        Py_DECREF(layout);
        return PROBE_SLOW;
    }
    prefix_at = PyLong_AsLongLong(PyTuple_GET_ITEM(layout, 0));
    ordinal_at = PyLong_AsLongLong(PyTuple_GET_ITEM(layout, 1));
    fan = PyBytes_AS_STRING(PyTuple_GET_ITEM(layout, 2));
    fan_len = PyBytes_GET_SIZE(PyTuple_GET_ITEM(layout, 2));
    Py_DECREF(layout); /* the idx holds the tuple, and so the bytes */
    if (PyErr_Occurred()) return PROBE_ERROR;
    if (fan_len != 1024) return PROBE_SLOW;
    const unsigned char *fanout = (const unsigned char *)fan;
    int first = oid[0];
    long long lo = first ? le32_at(fanout, (size_t)first - 1) : 0, hi = le32_at(fanout, (size_t)first);
    if (lo == hi) return PROBE_MISS;
    if (hi < lo) return PROBE_SLOW;
    PyObject *fdobj = PyObject_GetAttrString(idx, "open_fd");
    if (fdobj == NULL) return PROBE_ERROR;
    if (fdobj == Py_None) {
        Py_DECREF(fdobj);
        *ask = Py_BuildValue("(sO)", "fd", name);
        return *ask ? PROBE_ASK : PROBE_ERROR;
    }
    long fd = PyLong_AsLong(fdobj);
    Py_DECREF(fdobj);
    if (fd == -1 && PyErr_Occurred()) return PROBE_ERROR;
    uint64_t x = 0;
    for (int k = 0; k < 8; k++) x = (x << 8) | oid[k];
    long ordinal = sole_in((int)fd, prefix_at, ordinal_at, lo, hi, x);
    if (ordinal == -1) return PROBE_MISS;
    if (ordinal < 0) return PROBE_SLOW;
    if (rd == Py_None) {
        *ask = Py_BuildValue("(sO)", "reader", name);
        return *ask ? PROBE_ASK : PROBE_ERROR;
    }
    PyObject *table = PyObject_GetAttrString(rd, "walk_blocks"); /* (firsts: u32 LE bytes, count) */
    if (table == NULL) return PROBE_ERROR;
    if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(table, 0))) {
        Py_DECREF(table);
        return PROBE_SLOW;
    }
    const unsigned char *firsts = (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(table, 0));
    size_t nblocks = (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(table, 0)) / 4;
    long long count = PyLong_AsLongLong(PyTuple_GET_ITEM(table, 1));
    Py_DECREF(table);
    if (count == -1 && PyErr_Occurred()) return PROBE_ERROR;
    if (ordinal >= count || nblocks == 0) return PROBE_SLOW;
    /* the last block whose first ordinal is at or below the ordinal */
    size_t a = 0, b = nblocks;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (le32_at(firsts, m) <= (uint32_t)ordinal) a = m + 1;
        else b = m;
    }
    if (a == 0) return PROBE_SLOW;
    size_t blk = a - 1;
    PyObject *key = Py_BuildValue("(On)", name, (Py_ssize_t)blk);
    if (key == NULL) return PROBE_ERROR;
    PyObject *item = PyDict_GetItemWithError(blocks, key); /* ((view, ends), size) */
    if (item == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return PROBE_ERROR;
        }
        *ask = Py_BuildValue("(sOn)", "block", name, (Py_ssize_t)blk);
        Py_DECREF(key);
        return *ask ? PROBE_ASK : PROBE_ERROR;
    }
    Py_DECREF(key);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) return PROBE_SLOW;
    PyObject *entry = PyTuple_GET_ITEM(item, 0);
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || !PyList_Check(PyTuple_GET_ITEM(entry, 1)))
        return PROBE_SLOW;
    PyObject *ends = PyTuple_GET_ITEM(entry, 1);
    Py_ssize_t i = (Py_ssize_t)((uint32_t)ordinal - le32_at(firsts, blk));
    if (i >= PyList_GET_SIZE(ends)) return PROBE_SLOW;
    Py_ssize_t start = i ? PyLong_AsSsize_t(PyList_GET_ITEM(ends, i - 1)) : 0;
    Py_ssize_t end = PyLong_AsSsize_t(PyList_GET_ITEM(ends, i));
    if (PyErr_Occurred()) return PROBE_ERROR;
    f->block = entry;
    f->start = start;
    f->end = end;
    return PROBE_FOUND;
}

/* chain_walk(oid, order, base_mru, base_packs, packs, blocks, full_cache, links, max_links)
 *   -> (root, frames, ids, found_in, depth, root_id) | ("block", name, b) | ("reader", name) | ("fd", name) | None
 *
 * DiskObjectStore._read_chain's walk down the delta chain of ``oid``, link by link, without
 * Python between the links: each link is looked for in the packs in the order the Python walk
 * takes (``order`` for the first; then the packs ``base_packs`` names for the pack the link
 * before was in, then ``base_mru``), in each pack's index through its descriptor, and read from
 * the block cache (``blocks``: (pack, block) -> ((view, ends), size)). From the second link
 * on, an object in ``full_cache`` or ``links`` ends the walk as a whole object would.
 *
 * The result: the chain's root (the whole object's bytes: type byte + data), the payloads of
 * the deltas from ``oid`` down (zstd frames or patches) (ids: the objects read, ``oid`` first; found_in: the pack
 * each was in), ``oid``'s depth as its entry says, and the root's id. Nothing is decompressed or checked:
 * the caller decompresses the frames and checks the end's hash, as the Python walk does. A
 * tuple naming a block, a reader or a descriptor asks the caller to load it and walk again; None
 * sends the caller down the careful road. */
static PyObject *chain_walk(PyObject *mod, PyObject *args) {
    PyObject *oid_obj, *order, *base_mru, *base_packs, *packs, *blocks, *full_cache, *links;
    int max_links;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!O!i", &PyBytes_Type, &oid_obj, &PyList_Type, &order, &PyList_Type,
                          &base_mru, &PyDict_Type, &base_packs, &PyDict_Type, &packs, &PyDict_Type, &blocks,
                          &PyDict_Type, &full_cache, &PyDict_Type, &links, &max_links))
        return NULL;
    if (PyBytes_GET_SIZE(oid_obj) != 32) Py_RETURN_NONE;
    PyObject *frames = PyList_New(0), *ids = PyList_New(0), *found_in = PyList_New(0);
    PyObject *cur = oid_obj, *root = NULL, *result = NULL;
    Py_INCREF(cur);
    long depth = 0;
    if (!frames || !ids || !found_in) goto done;
    PyObject *prev_name = NULL; /* borrowed from found_in */
    int link;
    for (link = 0; link <= max_links; link++) {
        if (link) {
            PyObject *cached = PyDict_GetItemWithError(full_cache, cur);
            if (cached == NULL && !PyErr_Occurred()) cached = PyDict_GetItemWithError(links, cur);
            if (cached == NULL && PyErr_Occurred()) goto done;
            if (cached != NULL) {
                if (!PyTuple_Check(cached) || PyTuple_GET_SIZE(cached) < 1 || !PyBytes_Check(PyTuple_GET_ITEM(cached, 0)))
                    goto slow;
                root = PyTuple_GET_ITEM(cached, 0);
                Py_INCREF(root);
                break;
            }
        }
        const unsigned char *oid = (const unsigned char *)PyBytes_AS_STRING(cur);
        PyObject *prefer = NULL, *seq = order;
        if (link) {
            prefer = PyDict_GetItemWithError(base_packs, prev_name);
            if (prefer == NULL && PyErr_Occurred()) goto done;
            if (prefer != NULL && !PyList_Check(prefer)) goto slow;
            seq = base_mru;
        }
        Found f = {NULL, 0, 0};
        PyObject *where = NULL, *ask = NULL;
        int state = PROBE_MISS;
        Py_ssize_t np = prefer ? PyList_GET_SIZE(prefer) : 0;
        for (Py_ssize_t k = 0; k < np + PyList_GET_SIZE(seq) && state == PROBE_MISS; k++) {
            PyObject *name = k < np ? PyList_GET_ITEM(prefer, k) : PyList_GET_ITEM(seq, k - np);
            if (k >= np && np) {
                int in = PySequence_Contains(prefer, name);
                if (in < 0) goto done;
                if (in) continue;
            }
            state = probe_pack(packs, blocks, name, oid, &f, &ask);
            if (state == PROBE_FOUND) where = name;
        }
        if (state == PROBE_ERROR) goto done;
        if (state == PROBE_ASK) {
            result = ask;
            goto done;
        }
        if (state != PROBE_FOUND) goto slow; /* not found, or found oddly: the careful road */
        Py_buffer view;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(f.block, 0), &view, PyBUF_SIMPLE) < 0) goto done;
        const unsigned char *data = (const unsigned char *)view.buf;
        if (f.start < 0 || f.end > view.len || f.end - f.start < 2) {
            PyBuffer_Release(&view);
            goto slow;
        }
        int kind = data[f.start];
        if (PyList_Append(ids, cur) < 0 || PyList_Append(found_in, where) < 0) {
            PyBuffer_Release(&view);
            goto done;
        }
        prev_name = where;
        if (kind == 0) { /* FULL: type byte + data */
            const char *whole = (const char *)data + f.start + 1;
            Py_ssize_t n = f.end - f.start - 1;
            root = PyBytes_FromStringAndSize(whole, n);
            PyBuffer_Release(&view);
            if (root == NULL) goto done;
            break;
        }
        if (kind != 1 || f.end - f.start < 3 + 32) { /* DELTA: kind, type, depth, base id, frame */
            PyBuffer_Release(&view);
            goto slow;
        }
        if (!link) depth = data[f.start + 2];
        PyObject *base = PyBytes_FromStringAndSize((const char *)data + f.start + 3, 32);
        PyObject *frame = PyBytes_FromStringAndSize((const char *)data + f.start + 35, f.end - f.start - 35);
        PyBuffer_Release(&view);
        if (base == NULL || frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(base);
            Py_XDECREF(frame);
            goto done;
        }
        Py_DECREF(frame);
        Py_DECREF(cur);
        cur = base;
    }
    if (root == NULL) goto slow; /* longer than a chain may be */
    result = Py_BuildValue("(OOOOlO)", root, frames, ids, found_in, depth, cur);
    goto done;
slow:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(root);
    Py_XDECREF(cur);
    Py_XDECREF(frames);
    Py_XDECREF(ids);
    Py_XDECREF(found_in);
    return result;
}

/* The length of msgpack's shortest encoding of [0, keys, ids] (keys: a list of bytes, ids: that
   many bytes): a patched leaf's canonical length (TableWriter.patch_leaf). */
static PyObject *leaf_size(PyObject *mod, PyObject *args) {
    PyObject *keys;
    Py_ssize_t ids_len;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &keys, &ids_len)) return NULL;
    if (ids_len < 0) {
        PyErr_SetString(PyExc_ValueError, "leaf_size: negative length");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(keys);
    unsigned long long size = 2 + (n < 16 ? 1 : n < 65536 ? 3 : 5);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyList_GET_ITEM(keys, i);
        if (!PyBytes_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "leaf_size: keys must be bytes");
            return NULL;
        }
        Py_ssize_t m = PyBytes_GET_SIZE(k);
        size += (unsigned long long)m + (m < 256 ? 2 : m < 65536 ? 3 : 5);
    }
    size += (unsigned long long)ids_len + (ids_len < 256 ? 2 : ids_len < 65536 ? 3 : 5);
    return PyLong_FromUnsignedLongLong(size);
}

/* The length of a msgpack bin at p[*at..n) in its shortest form, *at moved past its header;
   -1 when it is not one (another type, a longer header than needed, past the end). */
static long long mp_bin(const unsigned char *p, size_t n, size_t *at) {
    size_t a = *at, len, head;
    if (a >= n) return -1;
    if (p[a] == 0xc4 && a + 2 <= n) {
        len = p[a + 1];
        head = 2;
    } else if (p[a] == 0xc5 && a + 3 <= n) {
        len = (size_t)p[a + 1] << 8 | p[a + 2];
        if (len < 256) return -1;
        head = 3;
    } else if (p[a] == 0xc6 && a + 5 <= n) {
        len = (size_t)p[a + 1] << 24 | (size_t)p[a + 2] << 16 | (size_t)p[a + 3] << 8 | p[a + 4];
        if (len < 65536) return -1;
        head = 5;
    } else
        return -1;
    if (len > n - a - head) return -1;
    *at = a + head;
    return (long long)len;
}

/* A tree leaf as Node.encode writes it, taken apart: msgpack [0, [key...], ids] with every
   header in its shortest form and nothing after it. */
typedef struct {
    size_t count;  /* keys */
    size_t *keys;  /* where each key's bytes start */
    size_t *lens;  /* and their lengths */
    size_t ids_at; /* where the record ids (32 bytes each, in key order) start */
} Leaf;

static void leaf_free(Leaf *leaf) {
    PyMem_Free(leaf->keys);
    PyMem_Free(leaf->lens);
    leaf->keys = leaf->lens = NULL;
}

/* 1: parsed; 0: not a leaf so encoded; -1: an error set (memory). */
static int leaf_parse(const unsigned char *p, size_t n, Leaf *leaf) {
    size_t at = 3, count;
    leaf->keys = leaf->lens = NULL;
    if (n < 3 || p[0] != 0x93 || p[1] != 0x00) return 0;
    if ((p[2] & 0xf0) == 0x90)
        count = p[2] & 0x0f;
    else if (p[2] == 0xdc && n >= 5) {
        count = (size_t)p[3] << 8 | p[4];
        if (count < 16) return 0;
        at = 5;
    } else if (p[2] == 0xdd && n >= 7) {
        count = (size_t)p[3] << 24 | (size_t)p[4] << 16 | (size_t)p[5] << 8 | p[6];
        if (count < 65536) return 0;
        at = 7;
    } else
        return 0;
    if (count > n) return 0; /* every key takes two bytes at least */
    leaf->keys = PyMem_Malloc((count ? count : 1) * sizeof *leaf->keys);
    leaf->lens = PyMem_Malloc((count ? count : 1) * sizeof *leaf->lens);
    if (!leaf->keys || !leaf->lens) {
        leaf_free(leaf);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        long long len = mp_bin(p, n, &at);
        if (len < 0) goto no;
        leaf->keys[i] = at;
        leaf->lens[i] = (size_t)len;
        at += (size_t)len;
    }
    long long idlen = mp_bin(p, n, &at);
    if (idlen < 0 || (size_t)idlen != 32 * count || at + (size_t)idlen != n) goto no;
    leaf->count = count;
    leaf->ids_at = at;
    return 1;
no:
    leaf_free(leaf);
    return 0;
}

/* The place of key e among the leaf's keys, or -1 when it is not one (bytes compare). */
static long long leaf_find(const unsigned char *p, const Leaf *leaf, const unsigned char *e, size_t el) {
    size_t lo = 0, hi = leaf->count;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2, kl = leaf->lens[m];
        int c = memcmp(p + leaf->keys[m], e, kl < el ? kl : el);
        if (c < 0 || (c == 0 && kl < el)) lo = m + 1;
        else hi = m;
    }
    if (lo == leaf->count || leaf->lens[lo] != el || memcmp(p + leaf->keys[lo], e, el) != 0) return -1;
    return (long long)lo;
}

static int all_bytes(PyObject *list, const char *what) {
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(list); k++)
        if (!PyBytes_Check(PyList_GET_ITEM(list, k))) {
            PyErr_Format(PyExc_TypeError, "%s must be bytes", what);
            return -1;
        }
    return 0;
}

/* patch_leaf(data, edits, rids) -> (new data, its leaf id, changed) or None: the tree leaf
   ``data`` (msgpack [0, [key...], ids], every header in its shortest form, as Node.encode
   writes it) with the record id of the row of each key of ``edits`` (ascending) set to the
   same place of ``rids``, the new leaf's id (SHA-256 of the node type byte and the bytes), and
   which places of ``edits`` changed an id. (b"", b"", []) when none did; None when the leaf is
   not so encoded or a key of ``edits`` is not one of its keys (rows added or removed: the
   caller rebuilds the leaf). The reference is snapgit/native.py's, with msgpack. */
static PyObject *patch_leaf(PyObject *mod, PyObject *args) {
    Py_buffer d;
    PyObject *edits, *rids;
    if (!PyArg_ParseTuple(args, "y*O!O!", &d, &PyList_Type, &edits, &PyList_Type, &rids)) return NULL;
    const unsigned char *p = d.buf;
    size_t n = (size_t)d.len;
    Py_ssize_t ne = PyList_GET_SIZE(edits);
    Leaf leaf = {0};
    PyObject *out = NULL, *changed = NULL, *fresh = NULL;
    if (PyList_GET_SIZE(rids) != ne) {
        PyErr_SetString(PyExc_ValueError, "patch_leaf: edits and rids differ in length");
        goto done;
    }
    if (all_bytes(edits, "patch_leaf: edits") < 0 || all_bytes(rids, "patch_leaf: rids") < 0) goto done;
    for (Py_ssize_t k = 0; k < ne; k++)
        if (PyBytes_GET_SIZE(PyList_GET_ITEM(rids, k)) != 32) {
            PyErr_SetString(PyExc_ValueError, "patch_leaf: a rid is not 32 bytes");
            goto done;
        }
    int parsed = leaf_parse(p, n, &leaf);
    if (parsed < 0) goto done;
    if (parsed == 0) goto not_leaf;
    fresh = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    changed = PyList_New(0);
    if (!fresh || !changed) goto done;
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(fresh);
    for (Py_ssize_t k = 0; k < ne; k++) {
        PyObject *e = PyList_GET_ITEM(edits, k);
        long long i = leaf_find(p, &leaf, (const unsigned char *)PyBytes_AS_STRING(e), (size_t)PyBytes_GET_SIZE(e));
        if (i < 0) goto not_leaf;
        unsigned char *slot = q + leaf.ids_at + 32 * (size_t)i;
        const char *rid = PyBytes_AS_STRING(PyList_GET_ITEM(rids, k));
        if (memcmp(slot, rid, 32) != 0) {
            memcpy(slot, rid, 32);
            PyObject *kk = PyLong_FromSsize_t(k);
            if (!kk || PyList_Append(changed, kk) < 0) {
                Py_XDECREF(kk);
                goto done;
            }
            Py_DECREF(kk);
        }
    }
    if (PyList_GET_SIZE(changed) == 0) {
        out = Py_BuildValue("(yyO)", "", "", changed);
        goto done;
    }
    unsigned char id[32];
    static const unsigned char node_type = 2;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        PyErr_NoMemory();
        goto done;
    }
    int bad = digest(ctx, &node_type, 1, q, n, id);
    EVP_MD_CTX_free(ctx);
    if (bad) goto done;
    out = Py_BuildValue("(Oy#O)", fresh, (const char *)id, (Py_ssize_t)32, changed);
    goto done;
not_leaf:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(fresh);
    Py_XDECREF(changed);
    leaf_free(&leaf);
    PyBuffer_Release(&d);
    return out;
}

/* leaf_ids(data, keys) -> [record id or None for each key] or None: the record ids the tree
   leaf ``data`` (encoded as patch_leaf takes it) holds under ``keys``, None for a key it does
   not hold; None when the leaf is not so encoded (the caller decodes it). */
static PyObject *leaf_ids(PyObject *mod, PyObject *args) {
    Py_buffer d;
    PyObject *keys;
    if (!PyArg_ParseTuple(args, "y*O!", &d, &PyList_Type, &keys)) return NULL;
    const unsigned char *p = d.buf;
    Leaf leaf = {0};
    PyObject *out = NULL;
    if (all_bytes(keys, "leaf_ids: keys") < 0) goto done;
    int parsed = leaf_parse(p, (size_t)d.len, &leaf);
    if (parsed < 0) goto done;
    if (parsed == 0) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t nk = PyList_GET_SIZE(keys);
    out = PyList_New(nk);
    if (!out) goto done;
    for (Py_ssize_t k = 0; k < nk; k++) {
        PyObject *e = PyList_GET_ITEM(keys, k);
        long long i = leaf_find(p, &leaf, (const unsigned char *)PyBytes_AS_STRING(e), (size_t)PyBytes_GET_SIZE(e));
        PyObject *rid = i < 0 ? Py_NewRef(Py_None)
                              : PyBytes_FromStringAndSize((const char *)p + leaf.ids_at + 32 * (size_t)i, 32);
        if (!rid) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, k, rid);
    }
done:
    leaf_free(&leaf);
    PyBuffer_Release(&d);
    return out;
}

static PyObject *set_ext_type(PyObject *mod, PyObject *cls) {
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "ExtType must be a tuple subclass");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(ExtTypeClass, cls);
    Py_RETURN_NONE;
}

/* -- Reader ------------------------------------------------------------------------------- */

/* Short ASCII texts repeat down a column (codes, names, timestamps): a hit in this table reuses
 * the str instead of allocating and decoding another. */
#define TEXT_SLOTS 4096
#define TEXT_MAX 32
#define INT_LO (-1024)
#define INT_HI 8192

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *stmt;
    int done;    /* the statement has returned its last row */
    int pending; /* the statement stands on a row not yet handed out (fetch_blocks looked ahead) */
    PyObject *texts[TEXT_SLOTS];
    PyObject *ints[INT_HI - INT_LO]; /* likewise small integers, beyond Python's own -5..256 */
} Reader;

static void set_sqlite_error(sqlite3 *db, int rc) {
    PyErr_Format(NativeError, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kw) {
    const char *path;
    int busy_ms = 1000;
    static char *names[] = {"path", "busy_ms", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|i", names, &path, &busy_ms)) return -1;
    if (self->db) {
        PyErr_SetString(NativeError, "reader already open");
        return -1;
    }
    int rc = sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_sqlite_error(self->db, rc);
        sqlite3_close(self->db);
        self->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(self->db, busy_ms);
    return 0;
}

static void Reader_finalize(Reader *self) {
    self->pending = 0;
    if (self->stmt) {
        sqlite3_finalize(self->stmt);
        self->stmt = NULL;
    }
}

static PyObject *Reader_close(Reader *self, PyObject *unused) {
    Reader_finalize(self);
    for (int i = 0; i < TEXT_SLOTS; i++) Py_CLEAR(self->texts[i]);
    for (int i = 0; i < INT_HI - INT_LO; i++) Py_CLEAR(self->ints[i]);
    if (self->db) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    Py_RETURN_NONE;
}

static void Reader_dealloc(Reader *self) {
    Py_XDECREF(Reader_close(self, NULL));
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Reader_open(Reader *self) {
    if (!self->db) {
        PyErr_SetString(NativeError, "reader is closed");
        return -1;
    }
    return 0;
}

/* execute(sql): prepare the one statement of ``sql`` (the previous one is finalized) */
static PyObject *Reader_execute(Reader *self, PyObject *arg) {
    Py_ssize_t n;
    const char *sql = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!sql || Reader_open(self)) return NULL;
    Reader_finalize(self);
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(self->db, sql, (int)n + 1, &self->stmt, &tail);
    if (rc != SQLITE_OK) {
        set_sqlite_error(self->db, rc);
        return NULL;
    }
    if (!self->stmt) {
        PyErr_SetString(NativeError, "no statement in the SQL");
        return NULL;
    }
    self->done = 0;
    self->pending = 0;
    Py_RETURN_NONE;
}

/* 1: the statement stands on a row to hand out (a pending one, or the next), 0: no more rows,
 * -1: an error (set) */
static int next_row(Reader *self) {
    if (self->pending) return 1;
    if (self->done) return 0;
    int rc = sqlite3_step(self->stmt);
    if (rc == SQLITE_ROW) {
        self->pending = 1;
        return 1;
    }
    if (rc == SQLITE_DONE) {
        self->done = 1;
        return 0;
    }
    set_sqlite_error(self->db, rc);
    return -1;
}

static PyObject *column_value(Reader *self, int i) {
    sqlite3_stmt *st = self->stmt;
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: Py_RETURN_NONE;
    case SQLITE_INTEGER: {
        sqlite3_int64 v = sqlite3_column_int64(st, i);
        if (v < INT_LO || v >= INT_HI) return PyLong_FromLongLong(v);
        PyObject **slot = &self->ints[v - INT_LO];
        if (!*slot) *slot = PyLong_FromLongLong(v);
        return Py_XNewRef(*slot);
    }
    case SQLITE_FLOAT: return PyFloat_FromDouble(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        const char *text = (const char *)sqlite3_column_text(st, i);
        if (!text && sqlite3_errcode(self->db) == SQLITE_NOMEM) return PyErr_NoMemory();
        if (!text) text = "";
        int nbytes = sqlite3_column_bytes(st, i);
        PyObject **slot = NULL;
        if (nbytes <= TEXT_MAX) {
            uint32_t h = 2166136261u; /* FNV-1a */
            for (int k = 0; k < nbytes; k++) h = (h ^ (unsigned char)text[k]) * 16777619u;
            slot = &self->texts[h & (TEXT_SLOTS - 1)];
            PyObject *hit = *slot;
            if (hit && PyUnicode_GET_LENGTH(hit) == nbytes && memcmp(PyUnicode_1BYTE_DATA(hit), text, nbytes) == 0)
                return Py_NewRef(hit);
        }
        PyObject *v = PyUnicode_DecodeUTF8(text, nbytes, NULL);
        if (!v && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            PyErr_Format(NativeError, "Could not decode to UTF-8 column '%s'", sqlite3_column_name(st, i));
        }
        if (v && slot && PyUnicode_IS_ASCII(v)) Py_XSETREF(*slot, Py_NewRef(v)); /* ASCII: its data is its UTF-8 */
        return v;
    }
    default: {
        const void *blob = sqlite3_column_blob(st, i);
        int nbytes = sqlite3_column_bytes(st, i);
        if (!blob && nbytes && sqlite3_errcode(self->db) == SQLITE_NOMEM) return PyErr_NoMemory();
        return PyBytes_FromStringAndSize(blob, nbytes);
    }
    }
}

/* fetchmany(n) -> up to n rows as tuples; [] once the statement is done */
static PyObject *Reader_fetchmany(Reader *self, PyObject *arg) {
    Py_ssize_t want = PyLong_AsSsize_t(arg);
    if (want == -1 && PyErr_Occurred()) return NULL;
    if (Reader_open(self)) return NULL;
    if (!self->stmt) {
        PyErr_SetString(NativeError, "no statement to fetch from");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    int ncol = sqlite3_column_count(self->stmt);
    while (PyList_GET_SIZE(out) < want) {
        int rc = next_row(self);
        if (rc == 0) break;
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
        self->pending = 0;
        PyObject *row = PyTuple_New(ncol);
        if (!row) {
            Py_DECREF(out);
            return NULL;
        }
        for (int i = 0; i < ncol; i++) {
            PyObject *v = column_value(self, i);
            if (!v) {
                Py_DECREF(row);
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(row, i, v);
        }
        int bad = PyList_Append(out, row);
        Py_DECREF(row);
        if (bad) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* -- block scans ---------------------------------------------------------------------------
 *
 * fetch_blocks reads the rows of a table keyed by one integer column the way the row cache
 * (rowcache.py) sees them, without a Python object per value: each row is packed as msgpack
 * packs the tuple Python's sqlite3 would give, its key encoded as encoding.keys_encoder does,
 * the rows cut into blocks where key >> bits changes (rowcache.block_ends) and each block
 * fingerprinted (pack_digest). A batch ends only where a block ends: the row after it is left
 * pending in the statement. A batch whose key column holds something else than an integer
 * (text in an INTEGER column) or whose block grows past all bounds is not "regular": it has
 * no keys, ends or fingerprints, and the caller takes its rows (and those of every later batch)
 * as tuples and cuts them in Python. Records come from Batch.records, through an Encoder that
 * holds the columns' converters. */

typedef struct {
    PyObject_HEAD
    int ncol;
    Py_ssize_t nrows, cap;
    Buf data;     /* the rows' msgpack, one after another */
    size_t *offs; /* per row ncol + 2 offsets: the row's start, each value's start, the row's end */
    PyObject *keys, *ends, *fps;
    int regular, final;
} Batch;

static PyTypeObject BatchType;

static void Batch_dealloc(Batch *self) {
    PyMem_Free(self->data.p);
    PyMem_Free(self->offs);
    Py_XDECREF(self->keys);
    Py_XDECREF(self->ends);
    Py_XDECREF(self->fps);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Batch_len(Batch *self) { return self->nrows; }

static inline size_t *row_offs(Batch *b, Py_ssize_t r) { return b->offs + (size_t)r * (size_t)(b->ncol + 2); }

/* a strict UTF-8 check, as Python's decoder makes it (no overlong forms, no surrogates) */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else
            return 0;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

/* the msgpack of column i of the statement's row, as msgpack packs what sqlite3 gives for it.
 * The row's values are read through sqlite3_column_value: one call into SQLite's API per value
 * (each takes the connection's mutex, a no-op here, and checks for errors) instead of two. The
 * value is "unprotected", which matters only when another thread uses the connection: none
 * does, the reader's connection is this object's alone. */
static int pack_column(Reader *self, Buf *b, int i) {
    sqlite3_value *v = sqlite3_column_value(self->stmt, i);
    switch (sqlite3_value_type(v)) {
    case SQLITE_NULL: return buf_put(b, "\xc0", 1);
    case SQLITE_INTEGER: return pack_i64(b, sqlite3_value_int64(v));
    case SQLITE_FLOAT: {
        double d = sqlite3_value_double(v);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return put_be(b, 0xcb, bits, 8);
    }
    case SQLITE_TEXT: {
        const unsigned char *text = sqlite3_value_text(v);
        size_t n = (size_t)sqlite3_value_bytes(v);
        if (!text) {
            if (sqlite3_errcode(self->db) == SQLITE_NOMEM || n) {
                PyErr_NoMemory();
                return FAILED;
            }
            text = (const unsigned char *)"";
        }
        if (!valid_utf8(text, n)) {
            PyErr_Format(NativeError, "Could not decode to UTF-8 column '%s'", sqlite3_column_name(self->stmt, i));
            return FAILED;
        }
        int rc = pack_len(b, n, 0xa0, 31, 0xd9, 0xda, 0xdb);
        return rc == PACKED && n ? buf_put(b, text, n) : rc;
    }
    default: {
        const void *blob = sqlite3_value_blob(v);
        size_t n = (size_t)sqlite3_value_bytes(v);
        if (!blob && n) {
            PyErr_NoMemory();
            return FAILED;
        }
        int rc = pack_len(b, n, 0, 0, 0xc4, 0xc5, 0xc6);
        return rc == PACKED && n ? buf_put(b, blob, n) : rc;
    }
    }
}

/* append the statement's row to the batch; -1 on an error (set) */
static int batch_add_row(Batch *bt, Reader *self) {
    if (bt->nrows == bt->cap) {
        Py_ssize_t cap = bt->cap ? 2 * bt->cap : 256;
        size_t *offs = PyMem_Realloc(bt->offs, (size_t)cap * (size_t)(bt->ncol + 2) * sizeof(size_t));
        if (!offs) {
            PyErr_NoMemory();
            return -1;
        }
        bt->offs = offs;
        bt->cap = cap;
    }
    size_t *o = row_offs(bt, bt->nrows);
    Buf *b = &bt->data;
    o[0] = b->len;
    int rc = pack_len(b, (size_t)bt->ncol, 0x90, 15, 0, 0xdc, 0xdd);
    for (int i = 0; rc == PACKED && i < bt->ncol; i++) {
        o[1 + i] = b->len;
        rc = pack_column(self, b, i);
    }
    if (rc != PACKED) {
        if (rc == UNSUPPORTED) PyErr_SetString(NativeError, "a value too large to pack");
        return -1;
    }
    o[bt->ncol + 1] = b->len;
    bt->nrows++;
    return 0;
}

/* the key bytes of an integer, as encoding.keys_encoder gives them */
static PyObject *int_key(long long v) {
    unsigned char k[9];
    uint64_t u = (uint64_t)v ^ 0x8000000000000000ULL;
    k[0] = 0x14;
    for (int i = 0; i < 8; i++) k[1 + i] = (unsigned char)(u >> (8 * (7 - i)));
    return PyBytes_FromStringAndSize((const char *)k, 9);
}

/* fetch_blocks(want, key_col, bits, fp_len) -> a Batch of at least ``want`` rows (fewer at the
 * end), or None once the statement is done */
static PyObject *Reader_fetch_blocks(Reader *self, PyObject *args) {
    Py_ssize_t want, fp_len;
    int key_col, bits;
    if (!PyArg_ParseTuple(args, "niin", &want, &key_col, &bits, &fp_len)) return NULL;
    if (Reader_open(self)) return NULL;
    if (!self->stmt) {
        PyErr_SetString(NativeError, "no statement to fetch from");
        return NULL;
    }
    int ncol = sqlite3_column_count(self->stmt);
    if (want < 1 || key_col < 0 || key_col >= ncol || bits < 0 || bits > 62 || fp_len < 0 || fp_len > 32) {
        PyErr_SetString(PyExc_ValueError, "fetch_blocks: want, key_col, bits or fp_len out of range");
        return NULL;
    }
    Batch *bt = PyObject_New(Batch, &BatchType);
    if (!bt) return NULL;
    bt->ncol = ncol;
    bt->nrows = bt->cap = 0;
    bt->data = (Buf){0};
    bt->offs = NULL;
    bt->keys = bt->ends = bt->fps = NULL;
    bt->regular = 1;
    bt->final = 0;
    /* a longer block (a key not unique) is cut in Python */
    Py_ssize_t bound = want > PY_SSIZE_T_MAX / 16 ? PY_SSIZE_T_MAX : want * 8 + 64;
    long long *kv = NULL;
    Py_ssize_t kcap = 0;
    Py_ssize_t *ends = NULL, nends = 0, ecap = 0;
    long long cur = 0;
    for (;;) {
        int rc = next_row(self);
        if (rc < 0) goto fail;
        if (rc == 0) {
            bt->final = 1;
            break;
        }
        int is_int = sqlite3_column_type(self->stmt, key_col) == SQLITE_INTEGER;
        long long v = is_int ? sqlite3_column_int64(self->stmt, key_col) : 0;
        long long q = v >> bits; /* arithmetic: floor, as Python's >> */
        int boundary = bt->nrows > 0 && (!is_int || q != cur);
        if (bt->nrows >= want && (!bt->regular || boundary)) break; /* the row stays pending */
        if (bt->regular && (!is_int || bt->nrows >= bound)) bt->regular = 0;
        if (bt->regular) {
            if (boundary) {
                if (nends == ecap) {
                    ecap = ecap ? 2 * ecap : 256;
                    Py_ssize_t *e = PyMem_Realloc(ends, (size_t)ecap * sizeof(Py_ssize_t));
                    if (!e) {
                        PyErr_NoMemory();
                        goto fail;
                    }
                    ends = e;
                }
                ends[nends++] = bt->nrows;
            }
            if (bt->nrows == kcap) {
                kcap = kcap ? 2 * kcap : 256;
                long long *k = PyMem_Realloc(kv, (size_t)kcap * sizeof(long long));
                if (!k) {
                    PyErr_NoMemory();
                    goto fail;
                }
                kv = k;
            }
            kv[bt->nrows] = v;
            cur = q;
        }
        if (batch_add_row(bt, self)) goto fail;
        self->pending = 0;
    }
    if (bt->nrows == 0) {
        Py_DECREF(bt);
        PyMem_Free(kv);
        PyMem_Free(ends);
        Py_RETURN_NONE;
    }
    if (bt->regular) {
        if (nends == ecap) {
            Py_ssize_t *e = PyMem_Realloc(ends, (size_t)(ecap + 1) * sizeof(Py_ssize_t));
            if (!e) {
                PyErr_NoMemory();
                goto fail;
            }
            ends = e;
        }
        ends[nends++] = bt->nrows;
        bt->keys = PyList_New(bt->nrows);
        bt->ends = PyList_New(nends);
        bt->fps = PyList_New(nends);
        if (!bt->keys || !bt->ends || !bt->fps) goto fail;
        for (Py_ssize_t r = 0; r < bt->nrows; r++) {
            PyObject *k = int_key(kv[r]);
            if (!k) goto fail;
            PyList_SET_ITEM(bt->keys, r, k);
        }
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx) {
            PyErr_NoMemory();
            goto fail;
        }
        Py_ssize_t start = 0;
        for (Py_ssize_t k = 0; k < nends; k++) {
            Py_ssize_t end = ends[k];
            Buf head = {0};
            unsigned char md[32];
            PyObject *e = PyLong_FromSsize_t(end), *fp = NULL;
            int bad = !e || pack_len(&head, (size_t)(end - start), 0x90, 15, 0, 0xdc, 0xdd) != PACKED;
            if (!bad) {
                size_t a = row_offs(bt, start)[0], z = row_offs(bt, end - 1)[bt->ncol + 1];
                bad = digest(ctx, head.p, head.len, bt->data.p + a, z - a, md) != 0;
            }
            PyMem_Free(head.p);
            if (!bad) fp = PyBytes_FromStringAndSize((const char *)md, fp_len);
            if (!fp) {
                Py_XDECREF(e);
                EVP_MD_CTX_free(ctx);
                if (!PyErr_Occurred()) PyErr_NoMemory();
                goto fail;
            }
            PyList_SET_ITEM(bt->ends, k, e);
            PyList_SET_ITEM(bt->fps, k, fp);
            start = end;
        }
        EVP_MD_CTX_free(ctx);
    }
    PyMem_Free(kv);
    PyMem_Free(ends);
    return (PyObject *)bt;
fail:
    PyMem_Free(kv);
    PyMem_Free(ends);
    Py_DECREF(bt);
    return NULL;
}

/* the Python value of a msgpack value this module packed from a column */
static PyObject *unpack_column(const unsigned char *p, size_t n) {
    unsigned char c = p[0];
    uint64_t u = 0;
    if (c == 0xc0) Py_RETURN_NONE;
    if (c <= 0x7f) return PyLong_FromLong(c);
    if (c >= 0xe0) return PyLong_FromLong((signed char)c);
    if ((c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb) {
        size_t h = c <= 0xbf ? 1 : c == 0xd9 ? 2 : c == 0xda ? 3 : 5;
        return PyUnicode_DecodeUTF8((const char *)p + h, (Py_ssize_t)(n - h), NULL);
    }
    if (c == 0xc4 || c == 0xc5 || c == 0xc6) {
        size_t h = c == 0xc4 ? 2 : c == 0xc5 ? 3 : 5;
        return PyBytes_FromStringAndSize((const char *)p + h, (Py_ssize_t)(n - h));
    }
    for (size_t i = 1; i < n; i++) u = (u << 8) | p[i];
    switch (c) {
    case 0xcb: {
        double d;
        memcpy(&d, &u, 8);
        return PyFloat_FromDouble(d);
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: return PyLong_FromUnsignedLongLong(u);
    case 0xd0: return PyLong_FromLong((int8_t)u);
    case 0xd1: return PyLong_FromLong((int16_t)u);
    case 0xd2: return PyLong_FromLong((int32_t)u);
    case 0xd3: return PyLong_FromLongLong((int64_t)u);
    }
    PyErr_SetString(NativeError, "not a value of a column");
    return NULL;
}

static int batch_range(Batch *self, PyObject *args, Py_ssize_t *a, Py_ssize_t *z) {
    *a = 0;
    *z = self->nrows;
    if (!PyArg_ParseTuple(args, "|nn", a, z)) return -1;
    if (*a < 0 || *z > self->nrows || *a > *z) {
        PyErr_SetString(PyExc_IndexError, "rows outside the batch");
        return -1;
    }
    return 0;
}

/* rows([a, b]) -> rows a..b as the tuples Python's sqlite3 gives */
static PyObject *Batch_rows(Batch *self, PyObject *args) {
    Py_ssize_t a, z;
    if (batch_range(self, args, &a, &z)) return NULL;
    PyObject *out = PyList_New(z - a);
    if (!out) return NULL;
    for (Py_ssize_t r = a; r < z; r++) {
        size_t *o = row_offs(self, r);
        PyObject *row = PyTuple_New(self->ncol);
        if (!row) goto fail;
        PyList_SET_ITEM(out, r - a, row);
        for (int i = 0; i < self->ncol; i++) {
            PyObject *v = unpack_column(self->data.p + o[1 + i], o[2 + i] - o[1 + i]);
            if (!v) goto fail;
            PyTuple_SET_ITEM(row, i, v);
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* -- Encoder: the converters of a scan's columns, and what they gave for values seen before -- */

#define MEMO_SLOTS 4096

typedef struct {
    uint64_t hash;
    unsigned char *mem; /* the value's msgpack, then its converted msgpack */
    uint32_t klen, vlen;
} Slot;

typedef struct {
    PyObject_HEAD
    int ncol;
    PyObject **convs; /* per column a converter or NULL */
    Slot **memo;      /* per converted column its table of conversions */
    int any;
} Encoder;

static PyTypeObject EncoderType;

static void Encoder_clear(Encoder *self) {
    for (int i = 0; i < self->ncol; i++) {
        if (self->convs) Py_CLEAR(self->convs[i]);
        if (self->memo && self->memo[i]) {
            for (int k = 0; k < MEMO_SLOTS; k++) PyMem_Free(self->memo[i][k].mem);
            PyMem_Free(self->memo[i]);
        }
    }
    PyMem_Free(self->convs);
    PyMem_Free(self->memo);
    self->convs = NULL;
    self->memo = NULL;
    self->ncol = 0;
}

static void Encoder_dealloc(Encoder *self) {
    Encoder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kw) {
    PyObject *convs;
    static char *names[] = {"converters", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", names, &convs)) return -1;
    PyObject *seq = PySequence_Fast(convs, "converters must be a sequence");
    if (!seq) return -1;
    Encoder_clear(self);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > 0xffff) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many columns");
        return -1;
    }
    self->convs = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    self->memo = PyMem_Calloc((size_t)n + 1, sizeof(Slot *));
    if (!self->convs || !self->memo) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    self->ncol = (int)n;
    self->any = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PySequence_Fast_GET_ITEM(seq, i);
        if (c == Py_None) continue;
        if (!PyCallable_Check(c)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "a converter is not callable");
            return -1;
        }
        self->memo[i] = PyMem_Calloc(MEMO_SLOTS, sizeof(Slot));
        if (!self->memo[i]) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        self->convs[i] = Py_NewRef(c);
        self->any = 1;
    }
    Py_DECREF(seq);
    return 0;
}

/* append the msgpack of column i's converted value to out: PACKED, FAILED (error set, the
 * converter's own included) or UNSUPPORTED (the converter gave what this packer does not know) */
static int convert_value(Encoder *enc, int i, const unsigned char *v, size_t n, Buf *out, Buf *tmp) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t k = 0; k < n; k++) h = (h ^ v[k]) * 1099511628211ULL;
    Slot *s = &enc->memo[i][h & (MEMO_SLOTS - 1)];
    if (s->mem && s->hash == h && s->klen == n && memcmp(s->mem, v, n) == 0)
        return buf_put(out, s->mem + n, s->vlen);
    PyObject *value = unpack_column(v, n);
    if (!value) return FAILED;
    PyObject *got = PyObject_CallOneArg(enc->convs[i], value);
    Py_DECREF(value);
    if (!got) return FAILED;
    tmp->len = 0;
    int rc = pack_value(tmp, got, 0);
    Py_DECREF(got);
    if (rc != PACKED) return rc;
    if (n + tmp->len <= 0xffffffffULL) {
        unsigned char *mem = PyMem_Malloc(n + tmp->len ? n + tmp->len : 1);
        if (mem) { /* without memory only the memo goes without */
            memcpy(mem, v, n);
            memcpy(mem + n, tmp->p, tmp->len);
            PyMem_Free(s->mem);
            *s = (Slot){h, mem, (uint32_t)n, (uint32_t)tmp->len};
        }
    }
    return buf_put(out, tmp->p, tmp->len);
}

/* records(a, b, encoder, prefix) -> ([sha256(prefix + payload)], [payload]) of rows a..b, each
 * payload the msgpack of the row with the encoder's converters applied; None where a converter
 * gave a value this packer does not know (the caller converts and encodes in Python) */
static PyObject *Batch_records(Batch *self, PyObject *args) {
    Py_ssize_t a, z, plen;
    Encoder *enc;
    const unsigned char *prefix;
    if (!PyArg_ParseTuple(args, "nnO!y#", &a, &z, &EncoderType, &enc, &prefix, &plen)) return NULL;
    if (a < 0 || z > self->nrows || a > z) {
        PyErr_SetString(PyExc_IndexError, "rows outside the batch");
        return NULL;
    }
    if (enc->ncol != self->ncol) {
        PyErr_SetString(PyExc_ValueError, "the encoder is for another number of columns");
        return NULL;
    }
    PyObject *ids = PyList_New(z - a), *payloads = PyList_New(z - a);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    Buf row = {0}, tmp = {0};
    int rc = (ids && payloads && ctx) ? PACKED : FAILED;
    if (rc == FAILED && !PyErr_Occurred()) PyErr_NoMemory();
    for (Py_ssize_t r = a; rc == PACKED && r < z; r++) {
        size_t *o = row_offs(self, r);
        const unsigned char *data = self->data.p + o[0];
        size_t len = o[self->ncol + 1] - o[0];
        if (enc->any) {
            row.len = 0;
            rc = buf_put(&row, data, o[1] - o[0]); /* the array's head */
            for (int i = 0; rc == PACKED && i < self->ncol; i++) {
                const unsigned char *v = self->data.p + o[1 + i];
                size_t n = o[2 + i] - o[1 + i];
                rc = enc->convs[i] ? convert_value(enc, i, v, n, &row, &tmp) : buf_put(&row, v, n);
            }
            if (rc != PACKED) break;
            data = row.p;
            len = row.len;
        }
        rc = put_record(ctx, prefix, (size_t)plen, data, len, ids, payloads, r - a);
    }
    PyMem_Free(row.p);
    PyMem_Free(tmp.p);
    EVP_MD_CTX_free(ctx);
    return records_result(rc, ids, payloads);
}

static PyObject *Batch_get(Batch *self, void *which) {
    PyObject *v = which == (void *)0 ? self->keys : which == (void *)1 ? self->ends : self->fps;
    return Py_NewRef(v ? v : Py_None);
}

static PyObject *Batch_flag(Batch *self, void *which) {
    return PyBool_FromLong(which == (void *)0 ? self->regular : self->final);
}

static PyGetSetDef Batch_getset[] = {
    {"keys", (getter)Batch_get, NULL, "the rows' key bytes (None unless regular)", (void *)0},
    {"ends", (getter)Batch_get, NULL, "where blocks end: the position after each block's last row", (void *)1},
    {"fps", (getter)Batch_get, NULL, "each block's fingerprint", (void *)2},
    {"regular", (getter)Batch_flag, NULL, "keys, ends and fingerprints were made (else: take the rows)", (void *)0},
    {"final", (getter)Batch_flag, NULL, "the statement's last batch", (void *)1},
    {NULL},
};

static PyMethodDef Batch_methods[] = {
    {"rows", (PyCFunction)Batch_rows, METH_VARARGS, "rows([a, b]): the rows as tuples"},
    {"records", (PyCFunction)Batch_records, METH_VARARGS, "records(a, b, encoder, prefix): (ids, payloads) or None"},
    {NULL},
};

static PySequenceMethods Batch_as_sequence = {.sq_length = (lenfunc)Batch_len};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snapgit._native.Batch",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_methods = Batch_methods,
    .tp_getset = Batch_getset,
    .tp_as_sequence = &Batch_as_sequence,
    .tp_doc = "rows Reader.fetch_blocks read, packed; made only by it",
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snapgit._native.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_doc = "Encoder(converters): per column a converter or None, for Batch.records",
};

static PyMethodDef Reader_methods[] = {
    {"execute", (PyCFunction)Reader_execute, METH_O, "prepare one SQL statement"},
    {"fetchmany", (PyCFunction)Reader_fetchmany, METH_O, "up to n rows of the statement"},
    {"fetch_blocks", (PyCFunction)Reader_fetch_blocks, METH_VARARGS, "fetch_blocks(want, key_col, bits, fp_len): a Batch or None"},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "close the connection"},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snapgit._native.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
    .tp_doc = "Reader(path, busy_ms=1000): a read-only SQLite connection without SQLite's mutex",
};

/* -- a run of whole objects of a pack block ------------------------------------------------- */

/* whole_run(data, ends, i, oids, j, out) -> count. data: a decompressed pack block's entries,
 * ends: where each ends in data. Appends (type, data) of entries i, i + 1, ... to the list
 * out for as long as each is stored whole (kind byte 0, then the type byte, then the data)
 * and hashes to oids[j], oids[j + 1], ...; stops, without an error, at the first that does not
 * (a delta, another object, damage, the block's end): the caller looks that one up the careful
 * way. A bulk read's records were written together, so runs are long. */
static PyObject *whole_run(PyObject *mod, PyObject *args) {
    Py_buffer data;
    PyObject *ends, *oids, *out;
    Py_ssize_t i, j;
    if (!PyArg_ParseTuple(args, "y*O!nOnO!", &data, &PyList_Type, &ends, &i, &oids, &j, &PyList_Type, &out)) return NULL;
    PyObject *seq = PySequence_Fast(oids, "oids must be a sequence");
    EVP_MD_CTX *ctx = seq ? EVP_MD_CTX_new() : NULL;
    Py_ssize_t count = 0;
    PyObject *result = NULL;
    if (!ctx) {
        if (seq && !PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nends = PyList_GET_SIZE(ends), noids = PySequence_Fast_GET_SIZE(seq);
    if (i < 0 || j < 0 || i >= nends) goto finish;
    size_t start = 0;
    if (i > 0) {
        start = PyLong_AsSize_t(PyList_GET_ITEM(ends, i - 1));
        if (start == (size_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            goto finish;
        }
    }
    const unsigned char *buf = data.buf;
    while (i + count < nends && j + count < noids) {
        size_t end = PyLong_AsSize_t(PyList_GET_ITEM(ends, i + count));
        if (end == (size_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            break;
        }
        if (end > (size_t)data.len || start > end || end - start < 2 || buf[start] != 0) break;
        PyObject *oid = PySequence_Fast_GET_ITEM(seq, j + count);
        if (!PyBytes_Check(oid) || PyBytes_GET_SIZE(oid) != 32) break;
        unsigned char md[32];
        if (digest(ctx, NULL, 0, buf + start + 1, end - start - 1, md)) goto done;
        if (memcmp(md, PyBytes_AS_STRING(oid), 32) != 0) break;
        PyObject *item = Py_BuildValue("(iy#)", (int)buf[start + 1], (const char *)buf + start + 2,
                                       (Py_ssize_t)(end - start - 2));
        if (!item || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
        start = end;
        count++;
    }
finish:
    result = PyLong_FromSsize_t(count);
done:
    EVP_MD_CTX_free(ctx);
    Py_XDECREF(seq);
    PyBuffer_Release(&data);
    return result;
}

/* -- records as PostgreSQL's binary COPY tuples ---------------------------------------------- */

/* pg_copy_rows(data, n, columns) -> the COPY (FORMAT BINARY) tuples of the n records joined in
 * data (msgpack arrays, as encode_row writes them), or None. columns: per value of a record, in
 * order, (kind, low, high); kind is one of PG_* below and names the column's type in the
 * database; low/high bound an integer's value, high a text's length in characters (-1: any).
 *
 * It writes a value only where its stored form is the one kind's Python value has, and it
 * accepts it only where the rows path (decode, RowChecker, the converters, psycopg's binary
 * dumpers) would write it unchanged: an int within its bounds, a float, a bool, a str of valid
 * UTF-8 without NUL and within its length, bytes, a date, a naive datetime for timestamp, an
 * aware one for timestamptz, a UUID, or nil. Anything else (another stored type, a value out
 * of bounds, a non-canonical msgpack form, damage) gives None: the caller takes the rows path,
 * which writes the value or says why it cannot. The bytes are the ones psycopg's binary COPY
 * writes for the decoded rows (the tests compare them through the database). */
enum { PG_INT2 = 1, PG_INT4, PG_INT8, PG_FLOAT8, PG_BOOL, PG_TEXT, PG_BYTEA, PG_DATE, PG_TIMESTAMP, PG_TIMESTAMPTZ, PG_UUID };

#define MAX_ORDINAL 3652059LL /* date.max.toordinal() */
#define MAX_MICROS 315537897599999999LL /* datetime.max - datetime(1, 1, 1), in microseconds */
#define PG_EPOCH_ORDINAL 730120LL /* date(2000, 1, 1).toordinal(): PostgreSQL's day 0 */
#define PG_EPOCH_MICROS ((PG_EPOCH_ORDINAL - 1) * 86400LL * 1000000LL) /* since 0001-01-01 */

typedef struct {
    int kind;
    long long low, high;
} PgColumn;

static inline uint64_t be_at(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
    return v;
}

static inline int put_be_raw(Buf *b, uint64_t v, int bytes) {
    if (buf_reserve(b, 8)) return -1;
    unsigned char *p = b->p + b->len;
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    b->len += (size_t)bytes;
    return 0;
}

/* an int32 length then the value's bytes */
static inline int put_field(Buf *b, const void *data, size_t n) {
    if (n > INT32_MAX || put_be_raw(b, (uint64_t)n, 4)) return -1;
    return buf_put(b, data, n);
}

/* the msgpack int at *p (any width), into *out; 0 when the value there is no int */
static int read_int(const unsigned char **pp, const unsigned char *end, long long *out) {
    const unsigned char *p = *pp;
    unsigned char c = *p;
    int bytes;
    if (c <= 0x7f || c >= 0xe0) {
        *out = (signed char)c;
        *pp = p + 1;
        return 1;
    }
    switch (c) {
    case 0xcc: case 0xd0: bytes = 1; break;
    case 0xcd: case 0xd1: bytes = 2; break;
    case 0xce: case 0xd2: bytes = 4; break;
    case 0xcf: case 0xd3: bytes = 8; break;
    default: return 0;
    }
    if (end - p - 1 < bytes) return 0;
    uint64_t u = be_at(p + 1, bytes);
    if (c >= 0xd0) { /* signed: sign-extend */
        int shift = 64 - 8 * bytes;
        *out = (long long)(u << shift) >> shift;
    } else {
        if (u > (uint64_t)INT64_MAX) return 0;
        *out = (long long)u;
    }
    *pp = p + 1 + bytes;
    return 1;
}

/* the str or bin at *p of the given family (0xa0 fixstr/0xd9.. str, or 0xc4.. bin) */
static int read_bytes(const unsigned char **pp, const unsigned char *end, int text, const unsigned char **s, size_t *n) {
    const unsigned char *p = *pp;
    unsigned char c = *p;
    size_t head;
    uint64_t len;
    if (text && c >= 0xa0 && c <= 0xbf) {
        head = 1;
        len = c & 0x1f;
    } else if (c == (text ? 0xd9 : 0xc4)) {
        head = 2;
        if (end - p < 2) return 0;
        len = p[1];
    } else if (c == (text ? 0xda : 0xc5)) {
        head = 3;
        if (end - p < 3) return 0;
        len = be_at(p + 1, 2);
    } else if (c == (text ? 0xdb : 0xc6)) {
        head = 5;
        if (end - p < 5) return 0;
        len = be_at(p + 1, 4);
    } else
        return 0;
    if ((uint64_t)(end - p) - head < len) return 0;
    *s = p + head;
    *n = (size_t)len;
    *pp = p + head + len;
    return 1;
}

/* the msgpack array header of a record of ncol values at *p (fixarray or array16, the forms a
 * row of fewer than 65536 values has); 0 when it is not one */
static int row_header(const unsigned char **pp, const unsigned char *end, Py_ssize_t ncol) {
    const unsigned char *p = *pp;
    uint64_t count;
    if (p >= end) return 0;
    if (*p >= 0x90 && *p <= 0x9f) {
        count = *p & 0x0f;
        p += 1;
    } else if (*p == 0xdc && end - p >= 3) {
        count = be_at(p + 1, 2);
        p += 3;
    } else
        return 0;
    *pp = p;
    return count == (uint64_t)ncol;
}

/* one value of the given column at *p, as a field; 0 when it is not one this writes */
static int pg_field(Buf *b, const unsigned char **pp, const unsigned char *end, const PgColumn *col) {
    const unsigned char *p = *pp;
    unsigned char c = *p;
    if (c == 0xc0) {
        *pp = p + 1;
        return put_be_raw(b, 0xffffffffu, 4) ? -1 : 1;
    }
    long long v;
    const unsigned char *s;
    size_t n;
    switch (col->kind) {
    case PG_INT2:
    case PG_INT4:
    case PG_INT8: {
        if (!read_int(pp, end, &v) || v < col->low || v > col->high) return 0;
        int bytes = col->kind == PG_INT2 ? 2 : col->kind == PG_INT4 ? 4 : 8;
        if (put_be_raw(b, (uint64_t)bytes, 4) || put_be_raw(b, (uint64_t)v, bytes)) return -1;
        return 1;
    }
    case PG_FLOAT8:
        if (c != 0xcb || end - p < 9) return 0;
        *pp = p + 9;
        return put_field(b, p + 1, 8) ? -1 : 1;
    case PG_BOOL:
        if (c != 0xc2 && c != 0xc3) return 0;
        *pp = p + 1;
        {
            unsigned char one = c == 0xc3;
            return put_field(b, &one, 1) ? -1 : 1;
        }
    case PG_TEXT: {
        if (!read_bytes(pp, end, 1, &s, &n)) return 0;
        if (memchr(s, 0, n) || !valid_utf8(s, n)) return 0;
        if (col->high >= 0) {
            long long chars = 0;
            for (size_t i = 0; i < n; i++) chars += (s[i] & 0xc0) != 0x80;
            if (chars > col->high) return 0;
        }
        return put_field(b, s, n) ? -1 : 1;
    }
    case PG_BYTEA:
        if (!read_bytes(pp, end, 0, &s, &n)) return 0;
        return put_field(b, s, n) ? -1 : 1;
    case PG_DATE:
        /* fixext4, code 3: the ordinal, int32 big-endian */
        if (c != 0xd6 || end - p < 6 || p[1] != 3) return 0;
        v = (int32_t)be_at(p + 2, 4);
        if (v < 1 || v > MAX_ORDINAL) return 0; /* no date: decoding it fails */
        *pp = p + 6;
        if (put_be_raw(b, 4, 4) || put_be_raw(b, (uint64_t)(v - PG_EPOCH_ORDINAL), 4)) return -1;
        return 1;
    case PG_TIMESTAMP:
    case PG_TIMESTAMPTZ:
        /* fixext8, code 5 (naive) or 6 (aware, UTC): microseconds since 0001-01-01 */
        if (c != 0xd7 || end - p < 10 || p[1] != (col->kind == PG_TIMESTAMP ? 5 : 6)) return 0;
        v = (long long)be_at(p + 2, 8);
        if (v < 0 || v > MAX_MICROS) return 0; /* no datetime: decoding it fails */
        *pp = p + 10;
        if (put_be_raw(b, 8, 4) || put_be_raw(b, (uint64_t)(v - PG_EPOCH_MICROS), 8)) return -1;
        return 1;
    case PG_UUID:
        /* fixext16, code 8 */
        if (c != 0xd8 || end - p < 18 || p[1] != 8) return 0;
        *pp = p + 18;
        return put_field(b, p + 2, 16) ? -1 : 1;
    }
    return 0;
}

static PyObject *pg_copy_rows(PyObject *mod, PyObject *args) {
    Py_buffer data;
    Py_ssize_t nrows;
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "y*nO!", &data, &nrows, &PyTuple_Type, &spec)) return NULL;
    Py_ssize_t ncol = PyTuple_GET_SIZE(spec);
    PgColumn *cols = NULL;
    Buf b = {0};
    PyObject *result = NULL;
    if (ncol < 1 || ncol > 0x7fff) goto none;
    cols = PyMem_Calloc((size_t)ncol, sizeof(PgColumn));
    if (!cols) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ncol; i++) {
        PyObject *t = PyTuple_GET_ITEM(spec, i);
        if (!PyArg_ParseTuple(t, "iLL", &cols[i].kind, &cols[i].low, &cols[i].high)) goto done;
    }
    const unsigned char *p = data.buf, *end = p + data.len;
    if (buf_reserve(&b, (size_t)data.len + (size_t)nrows * (size_t)ncol * 4 + 64)) goto done;
    for (Py_ssize_t r = 0; r < nrows; r++) {
        if (!row_header(&p, end, ncol)) goto none;
        if (put_be_raw(&b, (uint64_t)ncol, 2)) goto done;
        for (Py_ssize_t i = 0; i < ncol; i++) {
            if (p >= end) goto none;
            int rc = pg_field(&b, &p, end, &cols[i]);
            if (rc < 0) goto done;
            if (rc == 0) goto none;
        }
    }
    if (p != end) goto none;
    result = PyBytes_FromStringAndSize((const char *)b.p, (Py_ssize_t)b.len);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(b.p);
    PyMem_Free(cols);
    PyBuffer_Release(&data);
    return result;
}

/* -- records as SQLite parameters ------------------------------------------------------------- */

/* sqlite_params(data, n, kinds) -> [tuple of parameters] for the n records joined in data, as
 * the rows path (decode, then db.params' SQLite converters with the canonical style) gives them
 * to sqlite3's executemany, or None. kinds: per value, SQ_* below: the column's converter.
 *
 * SQ_ANY (no converter): nil, bool, an int of int64, a float, a str (valid UTF-8), bytes, as
 * they are. SQ_FLOAT (real, double): the same, but NaN is left to the rows path, which refuses
 * it. SQ_DATE: a stored date as isoformat() text; SQ_DATETIME: a stored naive datetime as
 * isoformat(" ") text, an aware one (stored in UTC) likewise with "+00:00"; both also take
 * what SQ_ANY takes (the converter passes other values on). Anything else (Spelled, another ext
 * type, an int beyond int64, damage) gives None: the rows path decodes and converts the batch. */
enum { SQ_ANY = 0, SQ_FLOAT = 1, SQ_DATE = 2, SQ_DATETIME = 3 };

#define ORDINAL_1970 719163LL /* date(1970, 1, 1).toordinal() */

/* the calendar date of a proleptic Gregorian ordinal (1 is 0001-01-01): H. Hinnant's
 * civil_from_days */
static void civil(long long ordinal, int *y, int *m, int *d) {
    long long z = ordinal - ORDINAL_1970 + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* one value of kind `kind` at *p as a new reference; NULL with no error set: not one this
 * gives (the caller returns None); NULL with an error set: an error */
static PyObject *sq_value(const unsigned char **pp, const unsigned char *end, int kind) {
    const unsigned char *p = *pp;
    unsigned char c = *p;
    long long v;
    const unsigned char *s;
    size_t n;
    if (c == 0xc0) {
        *pp = p + 1;
        return Py_NewRef(Py_None);
    }
    if (c == 0xc2 || c == 0xc3) {
        *pp = p + 1;
        return Py_NewRef(c == 0xc3 ? Py_True : Py_False);
    }
    if (read_int(pp, end, &v)) return PyLong_FromLongLong(v);
    if (c == 0xcb) {
        if (end - p < 9) return NULL;
        uint64_t bits = be_at(p + 1, 8);
        double f;
        memcpy(&f, &bits, 8);
        if (kind == SQ_FLOAT && f != f) return NULL;
        *pp = p + 9;
        return PyFloat_FromDouble(f);
    }
    if (read_bytes(pp, end, 1, &s, &n)) {
        if (!valid_utf8(s, n)) return NULL;
        return PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "strict");
    }
    if (read_bytes(pp, end, 0, &s, &n)) return PyBytes_FromStringAndSize((const char *)s, (Py_ssize_t)n);
    char text[40];
    int y, mo, d;
    if (kind == SQ_DATE && c == 0xd6 && end - p >= 6 && p[1] == 3) {
        v = (int32_t)be_at(p + 2, 4);
        if (v < 1 || v > MAX_ORDINAL) return NULL;
        civil(v, &y, &mo, &d);
        *pp = p + 6;
        int len = snprintf(text, sizeof text, "%04d-%02d-%02d", y, mo, d);
        return PyUnicode_FromStringAndSize(text, len);
    }
    if (kind == SQ_DATETIME && c == 0xd7 && end - p >= 10 && (p[1] == 5 || p[1] == 6)) {
        v = (long long)be_at(p + 2, 8);
        if (v < 0 || v > MAX_MICROS) return NULL;
        long long days = v / 86400000000LL, rest = v % 86400000000LL;
        civil(days + 1, &y, &mo, &d);
        int us = (int)(rest % 1000000), secs = (int)(rest / 1000000);
        int len = snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, secs / 3600, secs / 60 % 60,
                           secs % 60);
        if (us) len += snprintf(text + len, sizeof text - (size_t)len, ".%06d", us);
        if (p[1] == 6) len += snprintf(text + len, sizeof text - (size_t)len, "+00:00");
        *pp = p + 10;
        return PyUnicode_FromStringAndSize(text, len);
    }
    return NULL;
}

static PyObject *sqlite_params(PyObject *mod, PyObject *args) {
    Py_buffer data;
    Py_ssize_t nrows;
    const unsigned char *kinds;
    Py_ssize_t ncol;
    if (!PyArg_ParseTuple(args, "y*ny#", &data, &nrows, &kinds, &ncol)) return NULL;
    PyObject *rows = nrows >= 0 ? PyList_New(nrows) : NULL;
    PyObject *result = NULL;
    if (!rows) {
        if (!PyErr_Occurred()) result = Py_NewRef(Py_None);
        goto done;
    }
    const unsigned char *p = data.buf, *end = p + data.len;
    for (Py_ssize_t r = 0; r < nrows; r++) {
        if (ncol < 1 || !row_header(&p, end, ncol)) goto none;
        PyObject *row = PyTuple_New(ncol);
        if (!row) goto done;
        PyList_SET_ITEM(rows, r, row);
        for (Py_ssize_t i = 0; i < ncol; i++) {
            if (p >= end) goto none;
            PyObject *v = sq_value(&p, end, kinds[i]);
            if (!v) {
                if (PyErr_Occurred()) {
                    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) goto done;
                    PyErr_Clear();
                }
                goto none;
            }
            PyTuple_SET_ITEM(row, i, v);
        }
    }
    if (p != end) goto none;
    result = Py_NewRef(rows);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(rows);
    PyBuffer_Release(&data);
    return result;
}

/* shares_sqlite(path of a shared object) -> whether that object reaches the very SQLite library
 * this module uses. Two copies of SQLite in one process do not see each other's POSIX locks on
 * a file, and closing one copy's descriptor drops the other's locks. */
static PyObject *shares_sqlite(PyObject *mod, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path) return NULL;
    void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) Py_RETURN_FALSE;
    void *theirs = dlsym(h, "sqlite3_open_v2");
    dlclose(h);
    return PyBool_FromLong(theirs != NULL && theirs == (void *)&sqlite3_open_v2);
}

/* -- ints_fit: integer columns of a batch of rows, checked against their ranges ------------ */

/* ints_fit(rows, cols) -> [bool per col] | None
 *
 * For each (i, lo, hi) of ``cols`` (lo and hi within 64 bits), whether every value at position
 * i of the rows (tuples or lists) is None, a bool or an int within lo..hi: the fast check of an
 * integer column before a write (fit._IntRange, the reference), done for all of a table's
 * integer columns in one pass over the rows instead of a column list and three passes each.
 * None when a row is not a tuple or list or is too short (the caller checks the slow way). */
static PyObject *ints_fit(PyObject *mod, PyObject *args) {
    PyObject *rows, *cols;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &rows, &PyList_Type, &cols)) return NULL;
    Py_ssize_t nc = PyList_GET_SIZE(cols), nr = PyList_GET_SIZE(rows);
    Py_ssize_t *pos = PyMem_Calloc(nc ? nc : 1, sizeof(Py_ssize_t));
    long long *lo = PyMem_Calloc(nc ? nc : 1, sizeof(long long)), *hi = PyMem_Calloc(nc ? nc : 1, sizeof(long long));
    char *ok = PyMem_Calloc(nc ? nc : 1, 1);
    PyObject *result = NULL;
    if (!pos || !lo || !hi || !ok) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < nc; c++) {
        if (!PyArg_ParseTuple(PyList_GET_ITEM(cols, c), "nLL", &pos[c], &lo[c], &hi[c])) goto done;
        ok[c] = pos[c] >= 0;
    }
    for (Py_ssize_t r = 0; r < nr; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        PyObject **items;
        Py_ssize_t len;
        if (PyTuple_CheckExact(row)) {
            items = &PyTuple_GET_ITEM(row, 0);
            len = PyTuple_GET_SIZE(row);
        } else if (PyList_CheckExact(row)) {
            items = PyList_GET_SIZE(row) ? &PyList_GET_ITEM(row, 0) : NULL;
            len = PyList_GET_SIZE(row);
        } else {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        for (Py_ssize_t c = 0; c < nc; c++) {
            if (!ok[c]) continue;
            if (pos[c] >= len) {
                result = Py_None;
                Py_INCREF(result);
                goto done;
            }
            PyObject *v = items[pos[c]];
            if (v == Py_None) continue;
            if (!PyLong_Check(v) || !(PyLong_CheckExact(v) || PyBool_Check(v))) {
                ok[c] = 0; /* another type (an int subclass too): looked at one by one */
                continue;
            }
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (x == -1 && PyErr_Occurred()) goto done;
            if (overflow || x < lo[c] || x > hi[c]) ok[c] = 0;
        }
    }
    result = PyList_New(nc);
    if (!result) goto done;
    for (Py_ssize_t c = 0; c < nc; c++) PyList_SET_ITEM(result, c, PyBool_FromLong(ok[c]));
done:
    PyMem_Free(pos);
    PyMem_Free(lo);
    PyMem_Free(hi);
    PyMem_Free(ok);
    return result;
}

/* -- patches: the deltas of objects that changed in place --------------------------------- */

/* A patch turns a base into an object of the same length whose bytes differ in a few places (a
 * leaf whose rows changed in place: some 32-byte record ids replaced). It is git's delta
 * encoding (pack-format: "deltified representation") after a marker byte:
 *
 *   01 | varint base length | varint object length | instructions
 *
 * a varint being 7 bits a byte, low first, the high bit set on every byte but the last; an
 * instruction is either a copy from the base (1xxxxxxx, then the offset's bytes the low four
 * bits name, low first, then the size's bytes the next three bits name; size 0 means 0x10000)
 * or an insert of the 1..127 bytes that follow (0xxxxxxx, not 0). A zstd frame starts with 28,
 * so the marker tells the two kinds of DELTA payload apart. The reference is snapgit/native.py's
 * (patch_make, patch_apply), which must give the same bytes. */

#define PATCH_MARK 1
#define PATCH_GAP 8 /* fewer equal bytes than this between two changes: one insert holds both */

static unsigned char *put_varint(unsigned char *o, size_t v) {
    while (v >= 0x80) {
        *o++ = (unsigned char)(v & 0x7f) | 0x80;
        v >>= 7;
    }
    *o++ = (unsigned char)v;
    return o;
}

static unsigned char *put_copy(unsigned char *o, size_t off, size_t size) {
    while (size) {
        size_t n = size > 0xffffff ? 0xffffff : size;
        unsigned char *op = o++;
        unsigned char cmd = 0x80;
        for (int b = 0; b < 4; b++)
            if ((off >> (8 * b)) & 0xff) {
                *o++ = (unsigned char)((off >> (8 * b)) & 0xff);
                cmd |= (unsigned char)(1 << b);
            }
        for (int b = 0; b < 3; b++)
            if ((n >> (8 * b)) & 0xff) {
                *o++ = (unsigned char)((n >> (8 * b)) & 0xff);
                cmd |= (unsigned char)(0x10 << b);
            }
        *op = cmd;
        off += n;
        size -= n;
    }
    return o;
}

static unsigned char *put_insert(unsigned char *o, const unsigned char *p, size_t size) {
    while (size) {
        size_t n = size > 127 ? 127 : size;
        *o++ = (unsigned char)n;
        memcpy(o, p, n);
        o += n;
        p += n;
        size -= n;
    }
    return o;
}

/* patch_make(base, obj, limit): the patch from base to obj, when both are as long, their
 * length fits in 32 bits and the patch is at most `limit` bytes; else None. */
static PyObject *patch_make(PyObject *mod, PyObject *args) {
    Py_buffer b, f;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "y*y*n", &b, &f, &limit)) return NULL;
    PyObject *result = NULL;
    size_t n = (size_t)f.len;
    const unsigned char *bp = b.buf, *fp = f.buf;
    if (b.len != f.len || n == 0 || n > 0xffffffffu || limit <= 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    /* the worst case fits: a change is followed by PATCH_GAP equal bytes or the end, and costs
       its bytes, an insert header per 127 of them and a copy before it (8 bytes at most, and
       8 more for every 0xffffff bytes it copies) */
    size_t cap = 1 + 10 + 10 + n + n / 127 + 8 * (n / PATCH_GAP + 2) + 8 * (n / 0xffffff + 2) + 16;
    unsigned char *out = PyMem_Malloc(cap), *o = out;
    if (!out) {
        PyErr_NoMemory();
        goto done;
    }
    *o++ = PATCH_MARK;
    o = put_varint(o, n);
    o = put_varint(o, n);
    size_t i = 0, copy_from = 0;
    while (i < n) {
        /* equal bytes, eight at a time where they can be */
        while (i + 8 <= n) {
            uint64_t x, y;
            memcpy(&x, bp + i, 8);
            memcpy(&y, fp + i, 8);
            if (x != y) break;
            i += 8;
        }
        while (i < n && bp[i] == fp[i]) i++;
        if (i >= n) break;
        size_t last = i, j = i + 1;
        while (j < n && j - last <= PATCH_GAP) {
            if (bp[j] != fp[j]) last = j;
            j++;
        }
        o = put_copy(o, copy_from, i - copy_from);
        o = put_insert(o, fp + i, last + 1 - i);
        copy_from = i = last + 1;
        if ((Py_ssize_t)(o - out) > limit) break;
    }
    o = put_copy(o, copy_from, n - copy_from);
    if ((Py_ssize_t)(o - out) > limit) {
        result = Py_None;
        Py_INCREF(result);
    } else {
        result = PyBytes_FromStringAndSize((const char *)out, o - out);
    }
    PyMem_Free(out);
done:
    PyBuffer_Release(&b);
    PyBuffer_Release(&f);
    return result;
}

static int get_varint(const unsigned char **pp, const unsigned char *end, size_t *v) {
    const unsigned char *p = *pp;
    size_t r = 0;
    int shift = 0;
    for (;;) {
        if (p >= end || shift > 56) return -1;
        unsigned char c = *p++;
        r |= (size_t)(c & 0x7f) << shift;
        shift += 7;
        if (!(c & 0x80)) break;
    }
    *pp = p;
    *v = r;
    return 0;
}

/* One patch applied to `base` (n bytes) into a new bytes object; NULL with ValueError set when
 * the patch is damaged (any instruction out of bounds, a length that does not add up). */
static PyObject *apply_one(const unsigned char *base, size_t n, const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    size_t src, dst;
    /* an instruction gives at most the base's length (a copy) or 127 bytes (an insert): a
       longer object is damage, found before it is allocated */
    size_t most = n > 127 ? n : 127;
    if (len < 1 || *p++ != PATCH_MARK || get_varint(&p, end, &src) < 0 || get_varint(&p, end, &dst) < 0 ||
        src != n || dst > PY_SSIZE_T_MAX || dst / most > len) {
        PyErr_SetString(PyExc_ValueError, "damaged patch: its header does not fit its base");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)dst);
    if (!out) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    size_t left = dst;
    while (p < end) {
        unsigned char cmd = *p++;
        if (cmd & 0x80) {
            size_t off = 0, size = 0;
            for (int b = 0; b < 4; b++)
                if (cmd & (1 << b)) {
                    if (p >= end) goto bad;
                    off |= (size_t)*p++ << (8 * b);
                }
            for (int b = 0; b < 3; b++)
                if (cmd & (0x10 << b)) {
                    if (p >= end) goto bad;
                    size |= (size_t)*p++ << (8 * b);
                }
            if (size == 0) size = 0x10000;
            if (off > n || size > n - off || size > left) goto bad;
            memcpy(o, base + off, size);
            o += size;
            left -= size;
        } else if (cmd) {
            if ((size_t)(end - p) < cmd || cmd > left) goto bad;
            memcpy(o, p, cmd);
            o += cmd;
            p += cmd;
            left -= cmd;
        } else {
            goto bad;
        }
    }
    if (left == 0) return out;
bad:
    Py_DECREF(out);
    PyErr_SetString(PyExc_ValueError, "damaged patch: an instruction does not fit");
    return NULL;
}

/* patch_apply(base, patches): the object at the end of patches applied one after the other,
 * the first to base (a list of bytes-like objects). */
static PyObject *patch_apply(PyObject *mod, PyObject *args) {
    Py_buffer b;
    PyObject *patches;
    if (!PyArg_ParseTuple(args, "y*O!", &b, &PyList_Type, &patches)) return NULL;
    PyObject *cur = PyBytes_FromStringAndSize(b.buf, b.len);
    PyBuffer_Release(&b);
    if (!cur) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(patches); k++) {
        Py_buffer pb;
        if (PyObject_GetBuffer(PyList_GET_ITEM(patches, k), &pb, PyBUF_SIMPLE) < 0) {
            Py_DECREF(cur);
            return NULL;
        }
        PyObject *next = apply_one((const unsigned char *)PyBytes_AS_STRING(cur), (size_t)PyBytes_GET_SIZE(cur),
                                   pb.buf, (size_t)pb.len);
        PyBuffer_Release(&pb);
        Py_DECREF(cur);
        if (!next) return NULL;
        cur = next;
    }
    return cur;
}

static PyMethodDef methods[] = {
    {"pack_digest", pack_digest, METH_VARARGS, "fingerprints of slices of rows"},
    {"records", records, METH_VARARGS, "record ids and payloads of rows"},
    {"index_entries", index_entries, METH_O, "the sorted entries of a pack index"},
    {"sorted_hits", sorted_hits, METH_VARARGS, "which sorted numbers a pack index's prefixes hold"},
    {"index_sole", index_sole, METH_VARARGS, "the ordinal of the one index entry with a prefix"},
    {"chain_walk", chain_walk, METH_VARARGS, "the links of a delta chain, read from the block cache"},
    {"ints_fit", ints_fit, METH_VARARGS, "whether integer columns of rows fit their ranges"},
    {"patch_make", patch_make, METH_VARARGS, "the patch from a base to an object as long, or None"},
    {"patch_apply", patch_apply, METH_VARARGS, "patches applied one after the other to a base"},
    {"leaf_size", leaf_size, METH_VARARGS, "the canonical length of a leaf of these keys and ids"},
    {"patch_leaf", patch_leaf, METH_VARARGS, "a leaf with some record ids replaced, and its id"},
    {"leaf_ids", leaf_ids, METH_VARARGS, "the record ids a leaf holds under some keys"},
    {"whole_run", whole_run, METH_VARARGS, "a run of whole objects of a pack block, verified"},
    {"sqlite_params", sqlite_params, METH_VARARGS, "records as SQLite parameters, or None"},
    {"pg_copy_rows", pg_copy_rows, METH_VARARGS, "records as PostgreSQL binary COPY tuples, or None"},
    {"set_ext_type", set_ext_type, METH_O, "the ExtType class the packer knows"},
    {"shares_sqlite", shares_sqlite, METH_O, "whether a loaded library uses this module's SQLite"},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "snapgit._native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    if (PyType_Ready(&ReaderType) < 0 || PyType_Ready(&BatchType) < 0 || PyType_Ready(&EncoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    NativeError = PyErr_NewException("snapgit._native.Error", NULL, NULL);
    if (!NativeError || PyModule_AddObjectRef(m, "Error", NativeError) < 0 ||
        PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0 ||
        PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddStringConstant(m, "sqlite_version", sqlite3_libversion()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
