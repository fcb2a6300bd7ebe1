"""``python -m devd.common._spawned RESULT_FILE``: the child of the no-fork (spawn) path."""

import sys

from devd.common.childside import spawned_main

if __name__ == "__main__":
    spawned_main(sys.argv[1])
