"""Running the pipeline on a Ray cluster (``--engine ray``): the same stages, spread over
workers; the driver stays the single writer of the database."""
