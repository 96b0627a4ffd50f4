import RobitOCI
