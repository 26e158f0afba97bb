"""Run execution (spec 6, issue 5): the run lifecycle shared by the API, the worker and the
scheduler (`service`), building a run's components from the database (`plan`), the pool of child
processes runs execute in (`pool`, `child`)."""
