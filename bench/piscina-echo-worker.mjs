// A Piscina worker that returns its task: the pool's own round trip, for the transport floor.
export default (task) => task;
