import { StoreUnavailableError } from "../engine/index.js";

/**
 * Runs a call on Redis for a request: any failure is Redis being away or failing, which the
 * caller answers as UNAVAILABLE (the client retries), never as an internal error.
 */
export async function unavailableOnError<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(error);
  }
}
