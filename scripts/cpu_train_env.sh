# Set-up shared by the CPU training scripts (train_run.sh, finetune_small_v*.sh); sourced by them
# from the repository root, not run on its own. Sets DATA, THREADS and PY (each overridable from the
# environment) and checks that the python exists.
DATA="${DATA:-../shared/data}"
THREADS="${THREADS:-2}"
PY="${PYTHON:-python3}"
# On a shared 2-core machine, spinning OpenMP workers waste the other core and slow every step
# several times over when another process is busy; passive waiting avoids that.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
command -v "$PY" >/dev/null || { echo "no python: set PYTHON" >&2; exit 2; }
