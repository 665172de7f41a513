"""BOP19 evaluation: pose errors (VSD, MSSD, MSPD, ADD, ADI), matching, recalls and reports, giving the
numbers of bop_toolkit's ``eval_bop19_pose.py`` on the same inputs."""
