import sys

from calc import add, mul

failures = 0
for name, got, want in [("add(2, 3)", add(2, 3), 5), ("add(-1, 1)", add(-1, 1), 0), ("mul(4, 5)", mul(4, 5), 20)]:
    if got != want:
        print(f"FAIL {name} = {got}, want {want}")
        failures += 1
    else:
        print(f"ok   {name} = {got}")
print("all tests passed" if failures == 0 else f"{failures} test(s) failed")
sys.exit(1 if failures else 0)
