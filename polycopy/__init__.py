"""polycopy-stream outside the stages: infra/ (the bottom layer), polymarket/ (the venue adapter), and
the top layer (wiring/, the composition root; cli/; tools/; simulator/)."""
