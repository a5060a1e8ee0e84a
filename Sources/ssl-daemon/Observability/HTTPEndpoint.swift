import DaemonRuntime
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A response of the endpoint.
struct HTTPReply: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var extraHeaders: [(String, String)] = []

    static func text(_ status: HTTPResponseStatus, _ text: String) -> HTTPReply {
        HTTPReply(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// The daemon's HTTP/1.1 endpoint on its own SwiftNIO event loop (one thread): the trainer never
/// waits for a client, and a slow or idle client costs only its connection. Routes are answered
/// on the event loop from snapshots (atomics and small locks), so nothing here takes a lock the
/// trainer holds for long.
///
/// Limits: request headers at most 8 KiB (more: 400 and the connection closes), at most
/// `maxConnections` open connections (more are closed at once), idle connections closed after
/// 60 s. Only GET and HEAD are served (others: 405).
final class HTTPEndpoint: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    let address: String

    private init(group: MultiThreadedEventLoopGroup, channel: Channel, address: String) {
        self.group = group
        self.channel = channel
        self.address = address
    }

    /// Binds `listen` (port 0: any free port) and serves `route` there.
    static func start(listen: ListenAddress, maxConnections: Int, logger: Logger,
                      route: @escaping @Sendable (_ method: HTTPMethod, _ path: String, _ query: String) -> HTTPReply) async throws(DaemonError) -> HTTPEndpoint {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = Atomic<Int>(0)
        let limits = {
            var l = NIOHTTPDecoderLimitConfiguration()
            l.maxHeaderFieldSize = 8 * 1024
            l.maxHeaderListSize = 8 * 1024
            l.maxHeaderFieldCount = 100
            return l
        }()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if open.wrappingAdd(1, ordering: .relaxed).newValue > maxConnections {
                        open.wrappingSubtract(1, ordering: .relaxed)
                        channel.close(promise: nil)
                        return
                    }
                    channel.closeFuture.whenComplete { _ in open.wrappingSubtract(1, ordering: .relaxed) }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                    try sync.configureHTTPServerPipeline(withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
                    try sync.addHandler(HTTPRouteHandler(route: route))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: listen.host, port: listen.port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw .endpoint("\(listen)", "cannot listen: \(error)")
        }
        var bound = listen
        bound.port = channel.localAddress?.port ?? listen.port
        logger.info("http endpoint listening", metadata: ["address": "\(bound)", "loopback_only": "\(listen.isLoopback)"])
        return HTTPEndpoint(group: group, channel: channel, address: bound.description)
    }

    /// Stops accepting, closes the listening socket and every connection, and ends the loop.
    func close() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// One connection's requests: parse the target, route, write the reply (keep-alive as the
/// client asks); idle connections and protocol errors close it.
private final class HTTPRouteHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: @Sendable (HTTPMethod, String, String) -> HTTPReply
    private var head: HTTPRequestHead?

    init(route: @escaping @Sendable (HTTPMethod, String, String) -> HTTPReply) { self.route = route }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break  // GET and HEAD carry none; a body of another method is ignored (405)
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let target = head.uri
        let (path, query) = target.firstIndex(of: "?").map { (String(target[..<$0]), String(target[target.index(after: $0)...])) } ?? (target, "")
        var reply: HTTPReply
        if head.method != .GET && head.method != .HEAD {
            reply = .text(.methodNotAllowed, "only GET and HEAD are served\n")
            reply.extraHeaders.append(("Allow", "GET, HEAD"))
        } else {
            reply = route(head.method, path, query)
        }
        let keepAlive = head.isKeepAlive && head.method != .POST && head.method != .PUT
        var headers = HTTPHeaders([
            ("Content-Type", reply.contentType), ("Content-Length", "\(reply.body.count)"),
            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
        ])
        for (name, value) in reply.extraHeaders { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
