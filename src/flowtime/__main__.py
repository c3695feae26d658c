"""python -m flowtime"""

from flowtime.cli import main

main()
