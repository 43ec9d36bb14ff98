"""`python -m facelab`: the same as the `facelab` command (see facelab.app)."""
from facelab.app import main

if __name__ == "__main__":
    main()
