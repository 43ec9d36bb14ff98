"""The DVC stage entry points, one module per stage: scan, prepare, train, evaluate, report, and review (a pull
request's comparison of two revisions, outside the DAG). Each main() turns argv into one library call and an exit
status."""
