"""Stream processing: the pure copy engine and policy (core/) and the Faust worker around it (worker/)."""
