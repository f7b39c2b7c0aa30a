"""Tools on top of the pipeline: the demo, the benchmark, the what-if runner, the run summary."""
