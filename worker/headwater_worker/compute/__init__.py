"""ComputeTask: one task of the compute service protocol (seed 002) — S3 in, process, S3 out, callback."""
