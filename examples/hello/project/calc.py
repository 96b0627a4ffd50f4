"""A tiny calculator with one bug."""


def add(a, b):
    return a - b


def mul(a, b):
    return a * b
