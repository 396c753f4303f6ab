import sys

sys.exit(7)


def f(x):
    return x
