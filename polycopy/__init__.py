"""polycopy-stream outside the stages: infra/ (the bottom layer), polymarket/ (the venue adapter), and
the top layer (wiring.py, the composition root; cli.py; tools/; simulator/)."""
