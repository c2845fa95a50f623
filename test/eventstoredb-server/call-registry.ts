/**
 * The long-lived calls a test server is serving (subscriptions), so fault injection can drop them
 * the way a failing server would, and so they stop cleanly when the client cancels.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';

interface TrackedCall {
  readonly call: ServerWritableStream<unknown, unknown>;
  readonly wake: () => void;
  active: boolean;
}

export class CallRegistry {
  private readonly calls = new Set<TrackedCall>();

  track<Request, Response>(call: ServerWritableStream<Request, Response>, wake: () => void) {
    const tracked: TrackedCall = { call, wake, active: true };
    this.calls.add(tracked);
    const stop = () => {
      tracked.active = false;
      wake();
    };
    call.once('cancelled', stop);
    call.once('close', stop);
    return {
      isActive: () => tracked.active && !call.cancelled,
      release: () => {
        tracked.active = false;
        call.off('cancelled', stop);
        call.off('close', stop);
        this.calls.delete(tracked);
      },
    };
  }

  get size(): number {
    return this.calls.size;
  }

  /** Ends every tracked call with `error`; the client sees its subscription drop. */
  dropAll(error: () => ServiceError): number {
    const dropped = [...this.calls];
    for (const tracked of dropped) {
      tracked.active = false;
      this.calls.delete(tracked);
      if (!tracked.call.cancelled && !tracked.call.writableEnded) tracked.call.emit('error', error());
      tracked.wake();
    }
    return dropped.length;
  }
}
