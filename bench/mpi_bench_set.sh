# Sourced by bench_mpi_embed.sh and bench_mpi_verify.sh, with BUILD, NR, NG
# and T set: the binaries, mpirun's flags, the first NR twemoji as the
# references (T/refs.txt), NG generations in T/gens (every 4th reference as
# is, then the emoji after the references), norm FILE (a report's JSON
# without its dates and store name, for comparing runs) and the machine line.
B=$BUILD/copyscope; M=$BUILD/copyscope-mpi
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
DATA=$(cd ../shared/data/twemoji-64/img && pwd) || exit 1
rm -rf "$T"; mkdir -p "$T/gens" || exit 1
ls "$DATA" | grep png | sort | head -n "$NR" | sed "s|^|$DATA/|" > "$T/refs.txt"
{ awk 'NR % 4 == 1' "$T/refs.txt"; ls "$DATA" | grep png | sort | tail -n +"$((NR + 1))" | sed "s|^|$DATA/|"; } |
  head -n "$NG" | while read -r x; do cp "$x" "$T/gens/"; done
norm() { sed -E '/"(generated|store|started|finished)":/d' "$1"; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $NR references, $(ls "$T/gens" | wc -l) generations"
