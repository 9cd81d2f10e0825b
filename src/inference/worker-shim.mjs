// Development entry of an inference thread: lets Piscina load the TypeScript worker under tsx and
// vitest. Production loads the compiled inference-worker.js directly.
import { register } from "tsx/esm/api";

register();
const worker = await import("./inference-worker.ts");
export default worker.default;
