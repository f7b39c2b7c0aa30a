"""Stream processors: the pure copy policy (core/) and the Faust agents around it."""
