/**
 * Placement, the engine's room for where a stored batch runs: on this node alone, or on whichever
 * node of a cluster takes it. {@link createPlacement} is the one place that chooses.
 */
import type { Cluster } from "./cluster.js";
import { ClusterPlacement } from "./cluster-placement.js";
import { LocalPlacement } from "./local-placement.js";
import type { Placement, PlacementContext } from "./placement.js";

export type { Cluster, ClusterNode, RemoteCancel, RunControl, RunEnd } from "./cluster.js";
export type { Activity, Placement, PlacementContext, PlacementRunner } from "./placement.js";
export { ClusterPlacement, LocalPlacement };

/** This node's placement: in `cluster` when there is one, else alone. */
export function createPlacement(context: PlacementContext, cluster?: Cluster): Placement {
  return cluster === undefined
    ? new LocalPlacement(context)
    : new ClusterPlacement(context, cluster);
}
