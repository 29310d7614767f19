"""Files of a run directory: output (directory, scalars.csv, atomic writes),
xdmf (fields), series (reading fields back), log, checkpoint. Never imports
physics."""
