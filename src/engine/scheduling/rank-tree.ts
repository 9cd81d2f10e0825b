/**
 * A set ordered by a comparator that tells in O(log n) how many of its entries come before a
 * given one: a treap (a binary search tree balanced by random priorities) whose nodes keep their
 * subtree's size. Entries must be distinct under the comparator.
 */

interface Node<T> {
  readonly item: T;
  readonly priority: number;
  size: number;
  left: Node<T> | null;
  right: Node<T> | null;
}

const sizeOf = <T>(node: Node<T> | null): number => (node === null ? 0 : node.size);

/** See the file comment. */
export class RankTree<T> {
  #root: Node<T> | null = null;

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  /** Entries held. */
  get size(): number {
    return sizeOf(this.#root);
  }

  /** Adds `item`, O(log n) expected. */
  insert(item: T): void {
    const [lower, upper] = this.#split(this.#root, item);
    const node: Node<T> = { item, priority: Math.random(), size: 1, left: null, right: null };
    this.#root = this.#merge(this.#merge(lower, node), upper);
  }

  /** Removes `item` (the same entry); false when it is not held. O(log n) expected. */
  delete(item: T): boolean {
    const [lower, upper] = this.#split(this.#root, item);
    // `upper` starts with `item` when it is held: the entries that do not come before it.
    let removed = false;
    const rest = this.#dropFirst(upper, item, () => {
      removed = true;
    });
    this.#root = this.#merge(lower, rest);
    return removed;
  }

  /** How many entries come before `item` (held or not), O(log n) expected. */
  rank(item: T): number {
    let count = 0;
    let node = this.#root;
    while (node !== null) {
      if (this.before(node.item, item)) {
        count += sizeOf(node.left) + 1;
        node = node.right;
      } else node = node.left;
    }
    return count;
  }

  /** Splits `node` into the entries before `item` and the others. */
  #split(node: Node<T> | null, item: T): [Node<T> | null, Node<T> | null] {
    if (node === null) return [null, null];
    if (this.before(node.item, item)) {
      const [lower, upper] = this.#split(node.right, item);
      node.right = lower;
      node.size = 1 + sizeOf(node.left) + sizeOf(lower);
      return [node, upper];
    }
    const [lower, upper] = this.#split(node.left, item);
    node.left = upper;
    node.size = 1 + sizeOf(upper) + sizeOf(node.right);
    return [lower, node];
  }

  /** Joins two trees whose every entry of `a` comes before every entry of `b`. */
  #merge(a: Node<T> | null, b: Node<T> | null): Node<T> | null {
    if (a === null) return b;
    if (b === null) return a;
    if (a.priority > b.priority) {
      a.right = this.#merge(a.right, b);
      a.size = 1 + sizeOf(a.left) + sizeOf(a.right);
      return a;
    }
    b.left = this.#merge(a, b.left);
    b.size = 1 + sizeOf(b.left) + sizeOf(b.right);
    return b;
  }

  /** `node` without its first entry when that entry is `item`; `found` is told when it is. */
  #dropFirst(node: Node<T> | null, item: T, found: () => void): Node<T> | null {
    if (node === null) return null;
    if (node.left !== null) {
      node.left = this.#dropFirst(node.left, item, found);
      node.size = 1 + sizeOf(node.left) + sizeOf(node.right);
      return node;
    }
    if (node.item !== item) return node;
    found();
    return node.right;
  }
}
