import Foundation
import Glibc
import ServiceLifecycle

/// Runs `body` on a new thread of its own and suspends the calling task until it returns: how a
/// service awaits blocking C work (FFmpeg, BLAS, fsync) without holding a thread of Swift's
/// cooperative pool.
func onDedicatedThread<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (done: CheckedContinuation<T, Never>) in
        let thread = Thread {
            nameCurrentThread(name)
            done.resume(returning: body())
        }
        thread.name = name
        thread.start()
    }
}

/// Names the calling thread for `top -H`, `ps -L` and /proc (the kernel keeps 15 bytes); threads
/// that FFmpeg starts from it inherit the name. Writes /proc/thread-self/comm, which is what
/// pthread_setname_np does (Glibc's module map does not export that GNU extension).
func nameCurrentThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

/// The body of a service whose work is a blocking loop: `work` runs on a dedicated thread; graceful
/// shutdown calls `stop`, which must make `work` return soon. When `work` returns by itself,
/// `finished` runs (the trainer asks the group to shut down there), and the service still returns
/// only once its own shutdown is triggered: in a `ServiceGroup`, a service that returns while
/// another is being shut down cancels the group, so returning when told keeps the reverse-order
/// shutdown in order.
///
/// Cancellation means the grace time ran out (or a second signal came): the blocking work cannot
/// be cancelled, and checkpoints are atomic, so the process exits at once.
func runBlockingService(name: String, stop: @escaping @Sendable () -> Void,
                        finished: @escaping @Sendable () async -> Void = {},
                        work: @escaping @Sendable () -> Void) async {
    await exitingOnCancel {
        await withGracefulShutdownHandler {
            await onDedicatedThread(name: name, work)
            await finished()
            try? await gracefulShutdown()
        } onGracefulShutdown: {
            stop()
        }
    }
}

/// Runs `body`; if the task is cancelled meanwhile, exits the process with status 1.
func exitingOnCancel(_ body: () async -> Void) async {
    await withTaskCancellationHandler {
        await body()
    } onCancel: {
        FileHandle.standardError.write(Data("ssl-daemon: grace time exceeded: exiting now\n".utf8))
        _exit(1)
    }
}
