/* A C extension with refcount bugs, built by tests/conftest.py against the
   toolkit interpreter for the checker's tests. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Each leak_* forgets the Py_DECREF of an object it made. */
static PyObject *
leak_float(PyObject *self, PyObject *unused)
{
    PyObject *value = PyFloat_FromDouble(1.25);
    (void)value;
    Py_RETURN_NONE;
}

static PyObject *
leak_tuple(PyObject *self, PyObject *unused)
{
    PyObject *pair = PyTuple_Pack(2, Py_None, Py_None);
    (void)pair;
    Py_RETURN_NONE;
}

static PyObject *
leak_list(PyObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    (void)list;
    Py_RETURN_NONE;
}

/* Forgets the Py_DECREF of an object that already existed. */
static PyObject *
leak_reference(PyObject *self, PyObject *obj)
{
    Py_INCREF(obj);
    Py_RETURN_NONE;
}

/* Both at once: a reference on obj and a new float. */
static PyObject *
leak_reference_and_float(PyObject *self, PyObject *obj)
{
    Py_INCREF(obj);
    return leak_float(self, NULL);
}

/* What code built for a release ABI does: its inlined Py_INCREF or
   Py_DECREF changes the count but not sys.gettotalrefcount(). Here the
   increment is counted and the decrement is not, so the total drifts up by
   one a call while the real count is unchanged. */
static PyObject *
drift_reftotal(PyObject *self, PyObject *obj)
{
    Py_INCREF(obj);
    Py_SET_REFCNT(obj, Py_REFCNT(obj) - 1);
    Py_RETURN_NONE;
}

/* Forgets the PyMem_Free of a raw block. */
static PyObject *
leak_block(PyObject *self, PyObject *unused)
{
    void *block = PyMem_Malloc(48);
    if (block == NULL) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* Its clean twin. */
static PyObject *
malloc_and_free(PyObject *self, PyObject *unused)
{
    void *block = PyMem_Malloc(48);
    if (block == NULL) {
        return PyErr_NoMemory();
    }
    PyMem_Free(block);
    Py_RETURN_NONE;
}

/* A cache of raw blocks that keeps one more per call, up to six, as
   numpy's small-array caches do: not a leak. */
static void *block_cache[6];

static PyObject *
fill_block_cache(PyObject *self, PyObject *unused)
{
    for (size_t i = 0; i < Py_ARRAY_LENGTH(block_cache); i++) {
        if (block_cache[i] == NULL) {
            block_cache[i] = PyMem_Malloc(48);
            if (block_cache[i] == NULL) {
                return PyErr_NoMemory();
            }
            break;
        }
    }
    Py_RETURN_NONE;
}

/* An error path that forgets a tuple it had only begun to fill: slots 1 and
   2 stay NULL. */
static PyObject *
leak_half_built_tuple(PyObject *self, PyObject *unused)
{
    PyObject *tuple = PyTuple_New(3);
    if (tuple == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(tuple, 0, PyLong_FromLong(100000));
    PyErr_SetString(PyExc_ValueError, "gave up half way");
    return NULL;
}

/* The same with a list: PyList_New(n) leaves its n slots NULL. */
static PyObject *
leak_half_built_list(PyObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(2);
    if (list == NULL) {
        return NULL;
    }
    PyErr_SetString(PyExc_ValueError, "gave up before the first item");
    return NULL;
}

/* A static cache made once: held from C, but not a leak. */
static PyObject *cache;

static PyObject *
fill_static_cache(PyObject *self, PyObject *unused)
{
    if (cache == NULL) {
        cache = PyList_New(0);
        if (cache == NULL) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* The same static list, growing by one float a call: a leak held from C. */
static PyObject *
grow_static_cache(PyObject *self, PyObject *unused)
{
    if (fill_static_cache(self, NULL) == NULL) {
        return NULL;
    }
    PyObject *value = PyFloat_FromDouble(2.5);
    if (value == NULL || PyList_Append(cache, value) < 0) {
        Py_XDECREF(value);
        return NULL;
    }
    Py_DECREF(value);
    Py_RETURN_NONE;
}

/* A static list that keeps one more float a call and is emptied every 40
   calls, as _sqlite prunes the list of its cursors: held from C, growing in
   every measured run, and not a leak. */
#define PRUNED_EVERY 40
static PyObject *pruned;

static PyObject *
add_to_pruned_cache(PyObject *self, PyObject *unused)
{
    if (pruned == NULL && (pruned = PyList_New(0)) == NULL) {
        return NULL;
    }
    if (PyList_GET_SIZE(pruned) >= PRUNED_EVERY && PyList_SetSlice(pruned, 0, PY_SSIZE_T_MAX, NULL) < 0) {
        return NULL;
    }
    PyObject *value = PyFloat_FromDouble(3.5);
    if (value == NULL || PyList_Append(pruned, value) < 0) {
        Py_XDECREF(value);
        return NULL;
    }
    Py_DECREF(value);
    Py_RETURN_NONE;
}

/* Raw blocks, one more a call, all freed every 40 calls: not a leak. */
static void *pruned_blocks[PRUNED_EVERY];
static size_t pruned_count;

static PyObject *
add_to_pruned_blocks(PyObject *self, PyObject *unused)
{
    if (pruned_count == PRUNED_EVERY) {
        while (pruned_count) {
            PyMem_Free(pruned_blocks[--pruned_count]);
        }
    }
    if ((pruned_blocks[pruned_count] = PyMem_Malloc(48)) == NULL) {
        return PyErr_NoMemory();
    }
    pruned_count++;
    Py_RETURN_NONE;
}

/* The three types below differ only in how they are made and freed: each
   holds one object, which its traversal reports. */
typedef struct {
    PyObject_HEAD
    PyObject *value;
} HolderObject;

static int
holder_traverse(HolderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value);
    return 0;
}

/* Revived: mypyc's per-class free instance (`free_list_len=1`). Its
   dealloc keeps one dead instance, and the next one made revives it with
   Py_SET_REFCNT() and PyObject_GC_Track(), not _Py_NewReference(). */
static HolderObject *free_instance;

static int
revived_clear(HolderObject *self)
{
    Py_CLEAR(self->value);
    return 0;
}

static PyObject *
revived_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    HolderObject *self;
    if (free_instance != NULL) {
        self = free_instance;
        free_instance = NULL;
        Py_SET_REFCNT(self, 1);
        PyObject_GC_Track(self);
    }
    else {
        self = (HolderObject *)type->tp_alloc(type, 0);
        if (self == NULL) {
            return NULL;
        }
    }
    self->value = PyList_New(0);
    if (self->value == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
revived_dealloc(HolderObject *self)
{
    PyObject_GC_UnTrack(self);
    revived_clear(self);
    if (free_instance == NULL) {
        free_instance = self;
        return;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RevivedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leakext.Revived",
    .tp_basicsize = sizeof(HolderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = revived_new,
    .tp_dealloc = (destructor)revived_dealloc,
    .tp_traverse = (traverseproc)holder_traverse,
    .tp_clear = (inquiry)revived_clear,
};

/* Retracked: mypyc's dealloc of a subclass of a builtin tracks the dying
   object again before it calls its base's tp_dealloc, which untracks and
   frees it, as subtype_dealloc does. */
static void
retracked_base_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_TYPE(self)->tp_free(self);
}

static void
retracked_dealloc(HolderObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->value);
    PyObject_GC_Track(self);
    retracked_base_dealloc((PyObject *)self);
}

static PyObject *
retracked_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    HolderObject *self = (HolderObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->value = Py_NewRef(Py_None);
    }
    return (PyObject *)self;
}

static PyTypeObject RetrackedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leakext.Retracked",
    .tp_basicsize = sizeof(HolderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = retracked_new,
    .tp_dealloc = (destructor)retracked_dealloc,
    .tp_traverse = (traverseproc)holder_traverse,
};

/* Pooled: multidict's pool. A new object comes from the pool and is
   tracked before it is filled in, so its fields still hold what its last
   user left: here, what a freed object looks like to a debug build. */
static HolderObject *pool;
static union {
    PyObject object;
    unsigned char bytes[sizeof(PyObject)];
} freed_object;

static PyObject *
pooled_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    HolderObject *self;
    if (pool != NULL) {
        self = pool;
        pool = NULL;
        PyObject_Init((PyObject *)self, type);
    }
    else {
        self = PyObject_GC_New(HolderObject, type);
        if (self == NULL) {
            return NULL;
        }
    }
    PyObject_GC_Track(self);
    /* Nothing that could start a collection runs before it is filled in. */
    self->value = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static void
pooled_dealloc(HolderObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->value);
    if (pool == NULL) {
        memset(freed_object.bytes, 0xDD, sizeof(freed_object.bytes));
        self->value = &freed_object.object;
        pool = self;
        return;
    }
    PyObject_GC_Del(self);
}

static PyTypeObject PooledType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leakext.Pooled",
    .tp_basicsize = sizeof(HolderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = pooled_new,
    .tp_dealloc = (destructor)pooled_dealloc,
    .tp_traverse = (traverseproc)holder_traverse,
};

/* KeepsType: a heap type whose tp_dealloc frees the instance but never
   releases the reference it owned to its type (bpo-35810), as mypyc's
   generated deallocators do. */
static void
keeps_type_dealloc(PyObject *self)
{
    Py_TYPE(self)->tp_free(self);
}

static PyType_Slot keeps_type_slots[] = {
    {Py_tp_dealloc, keeps_type_dealloc},
    {0, NULL},
};

static PyType_Spec keeps_type_spec = {
    .name = "leakext.KeepsType",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = keeps_type_slots,
};

/* Native memory, outside Python's allocators. leak_malloc forgets the
   free() of 1,500 bytes: what a C library's missing cleanup call does. */
static PyObject *
leak_malloc(PyObject *self, PyObject *unused)
{
    char *block = malloc(1500);
    if (block == NULL) {
        return PyErr_NoMemory();
    }
    memset(block, 1, 1500);
    Py_RETURN_NONE;
}

/* Its clean twin. */
static PyObject *
malloc_then_free(PyObject *self, PyObject *unused)
{
    char *block = malloc(1500);
    if (block == NULL) {
        return PyErr_NoMemory();
    }
    memset(block, 1, 1500);
    free(block);
    Py_RETURN_NONE;
}

/* A leak inside a linked library: zlib's deflateInit() allocates its
   state (about 256 KiB), and only deflateEnd() frees it. */
static PyObject *
start_deflate(PyObject *self, PyObject *end)
{
    z_stream *stream = calloc(1, sizeof *stream);
    if (stream == NULL || deflateInit(stream, Z_DEFAULT_COMPRESSION) != Z_OK) {
        free(stream);
        return PyErr_NoMemory();
    }
    if (PyObject_IsTrue(end)) {
        deflateEnd(stream);
        free(stream);
    }
    Py_RETURN_NONE;
}

/* A descriptor opened in C: left open unless `close` is true. */
static PyObject *
open_fd(PyObject *self, PyObject *close_it)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (PyObject_IsTrue(close_it)) {
        close(fd);
    }
    Py_RETURN_NONE;
}

/* A C cache that mallocs once and keeps it: clean. */
static char *native_cache;

static PyObject *
fill_native_cache(PyObject *self, PyObject *unused)
{
    if (native_cache == NULL) {
        native_cache = malloc(4096);
        if (native_cache == NULL) {
            return PyErr_NoMemory();
        }
        memset(native_cache, 1, 4096);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"leak_float", leak_float, METH_NOARGS, NULL},
    {"leak_tuple", leak_tuple, METH_NOARGS, NULL},
    {"leak_list", leak_list, METH_NOARGS, NULL},
    {"leak_reference", leak_reference, METH_O, NULL},
    {"leak_reference_and_float", leak_reference_and_float, METH_O, NULL},
    {"drift_reftotal", drift_reftotal, METH_O, NULL},
    {"leak_block", leak_block, METH_NOARGS, NULL},
    {"malloc_and_free", malloc_and_free, METH_NOARGS, NULL},
    {"fill_block_cache", fill_block_cache, METH_NOARGS, NULL},
    {"leak_half_built_tuple", leak_half_built_tuple, METH_NOARGS, NULL},
    {"leak_half_built_list", leak_half_built_list, METH_NOARGS, NULL},
    {"fill_static_cache", fill_static_cache, METH_NOARGS, NULL},
    {"grow_static_cache", grow_static_cache, METH_NOARGS, NULL},
    {"add_to_pruned_cache", add_to_pruned_cache, METH_NOARGS, NULL},
    {"add_to_pruned_blocks", add_to_pruned_blocks, METH_NOARGS, NULL},
    {"leak_malloc", leak_malloc, METH_NOARGS, NULL},
    {"malloc_then_free", malloc_then_free, METH_NOARGS, NULL},
    {"start_deflate", start_deflate, METH_O, NULL},
    {"open_fd", open_fd, METH_O, NULL},
    {"fill_native_cache", fill_native_cache, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "leakext", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit_leakext(void)
{
    if (PyType_Ready(&RevivedType) < 0 || PyType_Ready(&PooledType) < 0
        || PyType_Ready(&RetrackedType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL
        || PyModule_AddObjectRef(m, "Revived", (PyObject *)&RevivedType) < 0
        || PyModule_AddObjectRef(m, "Pooled", (PyObject *)&PooledType) < 0
        || PyModule_AddObjectRef(m, "Retracked", (PyObject *)&RetrackedType) < 0
        || PyModule_Add(m, "KeepsType", PyType_FromSpec(&keeps_type_spec)) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}
