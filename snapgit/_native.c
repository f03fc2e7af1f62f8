/* snapgit._native: the commit's per-row work on SQLite in C, optional.
 *
 * Every function here has a Python reference in snapgit/native.py, which is what runs when this
 * module is not built, and the tests assert that both give the same objects and the same bytes.
 *
 *   Reader       a read-only SQLite connection opened without SQLite's mutex, whose rows come as
 *                Python's sqlite3 module gives them (int, float, str, bytes, None in a tuple).
 *                Python's module releases the GIL around every step and SQLite, in serialized
 *                mode, takes its mutex on every column: a third of the time of a plain fetch.
 *   pack_digest  msgpack (as msgpack.Packer(use_bin_type=True) packs) and SHA-256 of slices of a
 *                list of rows: the row cache's block fingerprints.
 *   records      msgpack and SHA-256 of each row: a commit's record payloads and ids.
 *   index_entries  a pack index's entries, sorted (128K ids in a few ms; in Python, 90 ms).
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
    if (buf_reserve(b, n)) return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static inline int put_be(Buf *b, unsigned char head, uint64_t v, int bytes) {
    unsigned char tmp[9];
    tmp[0] = head;
    for (int i = 0; i < bytes; i++) tmp[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return buf_put(b, tmp, 1 + (size_t)bytes);
}

/* -- msgpack, as msgpack-python's Packer(use_bin_type=True) writes it ------------------------ */

enum { PACKED = 0, FAILED = -1, UNSUPPORTED = -2 };

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
        if (rc != PACKED) break;
        unsigned char md[32];
        if (digest(ctx, prefix, (size_t)plen, b.p, b.len, md)) {
            rc = FAILED;
            break;
        }
        PyObject *id = PyBytes_FromStringAndSize((const char *)md, 32);
        PyObject *payload = id ? PyBytes_FromStringAndSize((const char *)b.p, (Py_ssize_t)b.len) : NULL;
        if (!payload) {
            Py_XDECREF(id);
            rc = FAILED;
            break;
        }
        PyList_SET_ITEM(ids, i, id);
        PyList_SET_ITEM(payloads, i, payload);
    }
    PyMem_Free(b.p);
    EVP_MD_CTX_free(ctx);
    if (rc == PACKED) {
        PyObject *res = PyTuple_Pack(2, ids, payloads);
        Py_DECREF(ids);
        Py_DECREF(payloads);
        return res;
    }
    Py_XDECREF(ids);
    Py_XDECREF(payloads);
    if (rc == FAILED) return NULL;
    Py_RETURN_NONE;
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
    int done; /* the statement has returned its last row */
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
    Py_RETURN_NONE;
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
    while (!self->done && PyList_GET_SIZE(out) < want) {
        int rc = sqlite3_step(self->stmt);
        if (rc == SQLITE_DONE) {
            self->done = 1;
            break;
        }
        if (rc != SQLITE_ROW) {
            set_sqlite_error(self->db, rc);
            Py_DECREF(out);
            return NULL;
        }
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

static PyMethodDef Reader_methods[] = {
    {"execute", (PyCFunction)Reader_execute, METH_O, "prepare one SQL statement"},
    {"fetchmany", (PyCFunction)Reader_fetchmany, METH_O, "up to n rows of the statement"},
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

static PyMethodDef methods[] = {
    {"pack_digest", pack_digest, METH_VARARGS, "fingerprints of slices of rows"},
    {"records", records, METH_VARARGS, "record ids and payloads of rows"},
    {"index_entries", index_entries, METH_O, "the sorted entries of a pack index"},
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
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    NativeError = PyErr_NewException("snapgit._native.Error", NULL, NULL);
    if (!NativeError || PyModule_AddObjectRef(m, "Error", NativeError) < 0 ||
        PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0 ||
        PyModule_AddStringConstant(m, "sqlite_version", sqlite3_libversion()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
