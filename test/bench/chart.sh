#!/usr/bin/env bash
# Draws make bench's figures as a PNG with gnuplot (Debian's gnuplot-nox):
# on the left the throughput of the in-database call (one key, every call
# audited, a random key) next to its plaintext ceiling and of HTTP get by
# provider (one key, a random key; wrk -c 32); on the right the HTTP latency
# percentiles p50 and p99 at 32, 256 and 2,000 connections (random keys), on a
# log scale. A figure the run did not produce is left out.
#
#   test/bench/chart.sh FIGURES.tsv OUT.png
# FIGURES.tsv is what test/bench/run.sh writes: "name<TAB>value" lines.
set -euo pipefail
figures=${1:?usage: chart.sh FIGURES.tsv OUT.png}
png=${2:?usage: chart.sh FIGURES.tsv OUT.png}
command -v gnuplot >/dev/null || { echo "chart.sh: gnuplot is not installed" >&2; exit 1; }
# get NAME: the figure's value, or NaN (gnuplot draws no bar for it)
get() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "NaN" : v) }' "$figures"; }
title="sdr_creds make bench, $(get commit), $(get date), $(get cpus) CPUs, $(get seconds) s x $(get rounds) rounds"

gnuplot <<GP
set terminal pngcairo size 1280,600 font "DejaVu Sans,11" noenhanced
set output "$png"
# label, calls per second, colour: grey the plaintext ceiling, blue in the database, orange HTTP
\$tput << EOD
"plaintext\nselect" $(get plain_select_tps) 0xbab0ac
"SQL\none key" $(get get_by_provider_tps) 0x4e79a7
"SQL one key\naudit = all" $(get get_by_provider_audited_tps) 0x4e79a7
"SQL\nrandom key" $(get get_random_key_tps) 0x4e79a7
"HTTP\none key" $(get http_one_rps) 0xf28e2b
"HTTP\nrandom key" $(get http_random_rps) 0xf28e2b
EOD
\$lat << EOD
32 $(get http_random_p50_ms) $(get http_random_p99_ms)
256 $(get conn256_p50_ms) $(get conn256_p99_ms)
2000 $(get conn2000_p50_ms) $(get conn2000_p99_ms)
EOD
set multiplot layout 1,2 title "$title" font ",12"
set bmargin 5
set style data histograms
set style fill solid 0.85 border -1
set boxwidth 0.8
set grid ytics
set key top right

set style histogram clustered gap 1
set title "Throughput: get by provider (SQL: pgbench -c 8; HTTP: wrk -c 32)"
set ylabel "calls per second"
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0     # room above the highest bar for its label
set xtics font ",9"
set format y "%.0f"
set xrange [-0.6:5.6]
set boxwidth 0.6
plot \$tput using 0:2:3:xtic(1) with boxes notitle linecolor rgb variable, \
     '' using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 font ",9" notitle

set title "HTTP latency, random keys (wrk --latency)"
set xrange [*:*]
set boxwidth 0.8
set ylabel "milliseconds (log scale)"
set xlabel "kept-alive connections"
set offsets 0, 0, 0, 0
set logscale y
set yrange [0.1:*]
set format y "%g"
set xtics font ",11"
plot \$lat using 2:xtic(1) title "p50" linecolor rgb "#59a14f", \
     '' using 3 title "p99" linecolor rgb "#e15759", \
     '' using (\$0 - 1.0/6):2:(sprintf("%.2f", \$2)) with labels offset 0,0.8 font ",9" notitle, \
     '' using (\$0 + 1.0/6):3:(sprintf("%.1f", \$3)) with labels offset 0,0.8 font ",9" notitle
unset multiplot
GP
