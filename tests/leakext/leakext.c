/* A C extension with refcount bugs, built by tests/conftest.py against the
   toolkit interpreter for the checker's tests. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

static PyMethodDef methods[] = {
    {"leak_float", leak_float, METH_NOARGS, NULL},
    {"leak_tuple", leak_tuple, METH_NOARGS, NULL},
    {"leak_list", leak_list, METH_NOARGS, NULL},
    {"leak_reference", leak_reference, METH_O, NULL},
    {"fill_static_cache", fill_static_cache, METH_NOARGS, NULL},
    {"grow_static_cache", grow_static_cache, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "leakext", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit_leakext(void)
{
    return PyModule_Create(&module);
}
