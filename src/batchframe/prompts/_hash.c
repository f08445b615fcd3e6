/* A fast 64-bit hash of each value of an Arrow large_binary array (see prompts/build.py).
 *
 * Used to number the distinct values of a mostly distinct prompt part (a description per
 * row). It needs speed, not secrecy: rows that share a hash are compared byte for byte
 * afterwards, and a collision only sends the part to dictionary encoding. Without this
 * module the same numbering is done with Python's hash() per value, about ten times slower.
 * The GIL is released while hashing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

static const uint64_t K1 = 0x9E3779B97F4A7C15ull;
static const uint64_t K2 = 0xC2B2AE3D27D4EB4Full;

static inline uint64_t rotate(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* splitmix64's finaliser: every input bit affects every output bit. */
static inline uint64_t avalanche(uint64_t h) {
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 31;
    return h;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = K1 ^ ((uint64_t)n * K2);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotate(h ^ (w * K2), 31) * K1;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = rotate(h ^ (w * K2), 31) * K1;
    }
    return avalanche(h);
}

PyDoc_STRVAR(hash_values_doc,
    "hash_values(offsets, data, start, count) -> bytes\n\n"
    "The 64-bit hash of values start..start+count-1 of a large_binary array, given its\n"
    "offsets buffer (int64) and data buffer, as `count` native int64s.");

static PyObject *hash_values(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer offsets, data;
    Py_ssize_t start, count;
    if (!PyArg_ParseTuple(args, "y*y*nn", &offsets, &data, &start, &count)) return NULL;
    PyObject *result = NULL;
    if (start < 0 || count < 0 ||
        (size_t)(start + count + 1) * sizeof(int64_t) > (size_t)offsets.len) {
        PyErr_SetString(PyExc_ValueError, "the offsets buffer is shorter than start + count + 1");
        goto done;
    }
    const int64_t *at = (const int64_t *)offsets.buf + start;
    for (Py_ssize_t i = 0; i <= count; i++) {
        if (at[i] < 0 || at[i] > data.len || (i && at[i] < at[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "the offsets do not fit the data buffer");
            goto done;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(uint64_t));
    if (!result) goto done;
    uint64_t *out = (uint64_t *)PyBytes_AS_STRING(result);
    const uint8_t *bytes = data.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        out[i] = hash_bytes(bytes + at[i], (size_t)(at[i + 1] - at[i]));
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef METHODS[] = {
    {"hash_values", hash_values, METH_VARARGS, hash_values_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_hash", "A fast hash of Arrow binary values (see build.py).", -1,
    METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hash(void) { return PyModule_Create(&MODULE); }
