import Foundation
import Glibc

/// The regular files below a watched directory. Symbolic links are followed, to files and to
/// directories (the root may be one too); each directory is entered once, by device and inode,
/// so link loops end. Names starting with "." are skipped (editors' and writers' temporaries).
package enum DirectoryWalker {
    package struct File: Equatable, Sendable {
        /// The path under the root as the user named it (links not resolved).
        package var path: String
        package var size: Int64
        /// Modification time, seconds since 1970.
        package var mtime: Double
    }

    package enum Problem: Equatable, Sendable {
        /// A link whose target is missing, or a loop of links.
        case brokenLink(path: String)
        /// A directory below the root that cannot be listed.
        case unreadable(path: String, reason: String)
    }

    /// What the root itself is, for a clear message when it is not a readable directory.
    package enum RootState: Equatable, Sendable {
        case directory
        case missing
        case notDirectory
        case unreadable(String)
    }

    package static func rootState(_ root: String) -> RootState {
        var info = stat()
        guard stat(root, &info) == 0 else {
            return errno == ENOENT || errno == ENOTDIR ? .missing : .unreadable(String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { return .notDirectory }
        guard access(root, R_OK | X_OK) == 0 else { return .unreadable(String(cString: strerror(errno))) }
        return .directory
    }

    /// Walks `root`; `directory` is called with every directory entered (for inotify watches).
    package static func walk(_ root: String, directory: (String) -> Void = { _ in }) -> (files: [File], problems: [Problem]) {
        var files: [File] = [], problems: [Problem] = []
        var visited = Set<[UInt64]>()
        var stack = [root]
        while let dir = stack.popLast() {
            var info = stat()
            guard stat(dir, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            guard visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else { continue }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                if dir != root { problems.append(.unreadable(path: dir, reason: (error as NSError).localizedDescription)) }
                continue
            }
            directory(dir)
            for name in names.sorted().reversed() where !name.hasPrefix(".") {
                let path = (dir as NSString).appendingPathComponent(name)
                var target = stat()
                guard stat(path, &target) == 0 else {
                    var link = stat()
                    if lstat(path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK { problems.append(.brokenLink(path: path)) }
                    continue
                }
                switch target.st_mode & S_IFMT {
                case S_IFDIR: stack.append(path)
                case S_IFREG: files.append(File(path: path, status: target))
                default: continue  // FIFOs, sockets, devices: nothing to learn from
                }
            }
        }
        return (files.sorted { $0.path < $1.path }, problems)
    }
}

extension DirectoryWalker {
    /// Size and modification time of the file at `path` (links followed), as `walk` reports them.
    package static func fileInfo(_ path: String) -> File? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return File(path: path, status: info)
    }
}

extension DirectoryWalker.File {
    init(path: String, status: stat) {
        self.init(path: path, size: Int64(status.st_size), mtime: Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9)
    }
}
