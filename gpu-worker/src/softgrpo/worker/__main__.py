"""`python -m softgrpo.worker`: see softgrpo.worker.main."""
from softgrpo.worker.main import main

main()
