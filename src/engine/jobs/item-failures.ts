/** Why items end without an output and batches end without completing: one value per cause. */
import { failure } from "../errors.js";

/** Why items end without an output, one value per cause. */
export const ITEM_FAILURES = Object.freeze({
  deadline: failure("DEADLINE_EXCEEDED", "the item did not start before the batch deadline"),
  cancelledQueued: failure("CANCELLED", "the batch was cancelled before the item ran"),
  cancelledRunning: failure("CANCELLED", "the batch was cancelled while the item was running"),
  modelUnavailable: failure("UNAVAILABLE", "the model is no longer available"),
  shutdown: failure("UNAVAILABLE", "the server shut down before the item ran"),
  runLost: failure(
    "UNAVAILABLE",
    "the item was running when the server stopped, and its deadline passed before it could run again",
  ),
  notHandedOver: failure(
    "UNAVAILABLE",
    "the batch was stored but could not be handed to a node; submit it again",
  ),
  nonFiniteOutput: failure(
    "INTERNAL",
    "the model's output for this item is not finite (NaN or Infinity)",
  ),
});

/** Why a batch ended cancelled. */
export const CANCELLED_BY_REQUEST = failure("CANCELLED", "cancelled by request");
