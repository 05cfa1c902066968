# Multi-node: start a Ray head on the first node of the SLURM allocation and a worker on
# each other node, then let main_ppo join the cluster through RAY_ADDRESS.
# --overlap: this script already runs inside a job step; the Ray steps share its nodes.
NNODES=@nodes@
if [[ -z "${SLURM_JOB_NODELIST:-}" || "${SLURM_JOB_NUM_NODES:-1}" -lt "$NNODES" ]]; then
    echo "verl_train.sh: this run needs $NNODES nodes of one SLURM allocation" \
         "(got ${SLURM_JOB_NUM_NODES:-none}); submit it with nodes=$NNODES" >&2
    exit 2
fi
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD_NODE="${NODES[0]}"
HEAD_IP=$(srun --overlap --nodes=1 --ntasks=1 -w "$HEAD_NODE" hostname --ip-address | awk '{print $1}')
RAY_PORT="${RAY_PORT:-6379}"
export RAY_ADDRESS="$HEAD_IP:$RAY_PORT"
CPUS_PER_NODE="${SLURM_CPUS_ON_NODE:-$(nproc)}"
echo "Ray head on $HEAD_NODE ($RAY_ADDRESS); workers on ${NODES[*]:1}"
srun --overlap --nodes=1 --ntasks=1 --gres=gpu:@gpus@ -w "$HEAD_NODE" \
    ray start --head --node-ip-address="$HEAD_IP" --port="$RAY_PORT" \
    --num-cpus="$CPUS_PER_NODE" --num-gpus=@gpus@ --block &
sleep 10
for node in "${NODES[@]:1:$((NNODES - 1))}"; do
    srun --overlap --nodes=1 --ntasks=1 --gres=gpu:@gpus@ -w "$node" \
        ray start --address="$RAY_ADDRESS" --num-cpus="$CPUS_PER_NODE" --num-gpus=@gpus@ --block &
    sleep 5
done
# Stop the Ray steps when this script ends, however it ends.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"$PYTHON" - <<'WAIT_FOR_GPUS'
import os, sys, time
import ray
want = @total_gpus@
ray.init(address=os.environ["RAY_ADDRESS"])
for _ in range(120):
    if ray.cluster_resources().get("GPU", 0) >= want:
        sys.exit(0)
    time.sleep(5)
sys.exit(f"Ray cluster reached {ray.cluster_resources().get('GPU', 0)} of {want} GPUs in 10 minutes")
WAIT_FOR_GPUS

