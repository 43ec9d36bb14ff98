"""The `facelab` command's sub-commands, one module each: predict, evaluate (a labelled folder)."""
